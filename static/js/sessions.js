// Session list: new sessions and status changes of the watched tenants appear without reloading.
import { connectLive, element } from "./live.js";

const table = document.getElementById("sessions-table");
const body = table.querySelector("tbody");
const tenants = (table.dataset.watchTenants || "").split(",").filter(Boolean);

if (table.dataset.live === "1" && tenants.length) {
  connectLive({
    onOpen: (send) => tenants.forEach((tenant) => send({ action: "watch_tenant", tenant })),
    onMessage: (message) => {
      const existing = body.querySelector(`tr[data-tenant="${message.tenant}"][data-session="${CSS.escape(message.session || "")}"]`);
      if (message.type === "session.updated" && existing) {
        const badge = existing.querySelector(".status");
        badge.textContent = message.status;
        badge.className = `status status-${message.status}`;
      } else if (message.type === "session.created" && !existing) {
        body.querySelector("tr.empty")?.remove();
        const when = new Date(message.at);
        const row = element("tr", { "data-session": message.session, "data-tenant": message.tenant, class: "fresh" },
          element("td", {}, message.session),
          element("td", {}, ""),
          element("td", {}, message.user_id || ""),
          element("td", {}, element("span", { class: `status status-${message.status}` }, message.status)),
          element("td", {}, "0"),
          element("td", {}, when.toISOString().replace("T", " ").slice(0, 19)),
          element("td", {}, when.toISOString().replace("T", " ").slice(0, 19)));
        body.prepend(row);
      }
    },
  });
}
