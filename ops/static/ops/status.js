// Reload the operations status every 15 seconds while "Refresh every 15 seconds" is ticked.
// A timed reload the person can switch off (WCAG 2.2.1), unlike <meta http-equiv="refresh">;
// the choice lasts as long as the browser tab.
(function () {
  "use strict";
  const box = document.getElementById("ops-auto-refresh");
  if (!box) return;
  const key = "dossier.ops.autoRefresh";
  let timer = null;
  box.checked = sessionStorage.getItem(key) !== "off";
  function arm() {
    clearTimeout(timer);
    if (box.checked) timer = setTimeout(() => window.location.reload(), 15000);
  }
  box.addEventListener("change", () => {
    sessionStorage.setItem(key, box.checked ? "on" : "off");
    arm();
  });
  arm();
})();
