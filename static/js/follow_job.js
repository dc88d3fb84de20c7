// A compliance job's page (an erasure, an export) follows its job live: progress frames as they come, and a
// reload when the status changes (the page renders each status itself). A status check on every (re)connect
// and every 5 s covers what the socket missed; live updates are best-effort, the page is the truth.
import { connectLive } from "./live.js";

export function followJob({ badgeId, tenant, type, matches, onProgress }) {
  const badge = document.getElementById(badgeId);
  async function checkStatus() {
    const response = await fetch("?format=json", { headers: { Accept: "application/json" } });
    if (response.ok && (await response.json()).status !== badge.textContent) location.reload();
  }
  setInterval(checkStatus, 5000);
  function showStatus(status) {
    // "live" once the server confirms the watch; "connected" until then, "offline" while reconnecting.
    const live = document.getElementById("live-status");
    live.dataset.status = status;
    live.textContent = { live: "live", connected: "connecting…" }[status] || "reconnecting…";
  }
  connectLive({
    onStatus: (status) => showStatus(status),
    onOpen: (send) => {
      send({ action: "watch_tenant", tenant });
      checkStatus();  // whatever changed before the subscription took effect
    },
    onMessage: (message) => {
      if (message.type === "watching") showStatus("live");
      if (message.type !== type || !matches(message)) return;
      onProgress(message);
      if (message.status !== badge.textContent) location.reload();
    },
  });
}
