// Checkpoint diff page: hide the unchanged rows of the state tree on request (remembered for the next diff).
const tree = document.getElementById("diff-tree");
const toggle = document.getElementById("only-changes");
const KEY = "diff.onlyChanges";

function apply(on) {
  tree.classList.toggle("only-changes", on);
  toggle.checked = on;
}

toggle.addEventListener("change", () => {
  apply(toggle.checked);
  try { localStorage.setItem(KEY, toggle.checked ? "1" : "0"); } catch { /* storage may be off */ }
});

let stored = null;
try { stored = localStorage.getItem(KEY); } catch { /* storage may be off */ }
apply(stored === "1");
