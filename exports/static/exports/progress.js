/* Export progress refreshed in place: every element with data-progress-url asks its job's
   JSON (scoped to the user's organizations by the server) until the job has ended, and
   updates the bar, percent, status badge and download cell of its row. No page reloads. */
(function () {
  "use strict";
  const EVERY_MS = 1500;

  function set(scope, name, apply) {
    scope.querySelectorAll('[data-live="' + name + '"]').forEach(apply);
  }

  function update(node, job) {
    const scope = node.closest("tr") || node;
    set(scope, "bar", (el) => {
      if (el.tagName === "PROGRESS") el.value = job.percent;
      else el.style.width = job.percent + "%";
      el.textContent = el.tagName === "PROGRESS" ? job.percent + " %" : el.textContent;
    });
    set(scope, "percent", (el) => { el.textContent = job.percent + (el.dataset.unit === "%" ? "%" : " %"); });
    set(scope, "rows", (el) => { el.textContent = job.rows_done + " of " + (job.rows_total ?? "?") + " rows"; });
    set(scope, "status", (el) => {
      el.textContent = job.status_label;
      if (el.classList.contains("ws-badge")) {
        Array.from(el.classList).filter((c) => c.startsWith("ws-") && c !== "ws-badge")
          .forEach((c) => el.classList.remove(c));
        el.classList.add("ws-" + job.status);
      }
      if (el.style.background) el.style.background = job.colour;
    });
    if (job.terminal) {
      node.removeAttribute("data-progress-url");
      scope.classList.add("ws-ended");
      set(scope, "download", (el) => {
        if (!job.download_url) { el.textContent = job.error ? job.error : "—"; return; }
        const link = document.createElement("a");
        link.className = "button ws-download";
        link.href = job.download_url;
        link.textContent = "Download";
        el.replaceChildren(link);
      });
    }
  }

  function tick() {
    const nodes = Array.from(document.querySelectorAll("[data-progress-url]"));
    Promise.all(nodes.map((node) =>
      fetch(node.dataset.progressUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then((response) => (response.ok ? response.json() : null))
        .then((job) => { if (job) update(node, job); })
        .catch(() => null)
    )).finally(() => window.setTimeout(tick, EVERY_MS));
  }

  /* On the workspace: exports started elsewhere (the API, a schedule, a colleague) join
     "Running now", and "Latest finished exports" is redrawn, from the page itself as the
     server renders it now. Rows already shown keep their place (and their Download). */
  const LISTS_EVERY_MS = 8000;

  function adopt(nodes) {
    return Array.from(nodes).map((n) => document.adoptNode(n));
  }

  function refreshLists() {
    const running = document.getElementById("ws-running-list");
    if (!running) return;
    if (document.hidden) {  // a tab in the background asks nothing of the server
      window.setTimeout(refreshLists, LISTS_EVERY_MS);
      return;
    }
    fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then((response) => (response.ok ? response.text() : null))
      .then((html) => {
        if (!html) return;
        const fresh = new DOMParser().parseFromString(html, "text/html");
        const freshRunning = fresh.getElementById("ws-running-list");
        const finished = document.getElementById("ws-finished-list");
        const freshFinished = fresh.getElementById("ws-finished-list");
        if (finished && freshFinished) finished.replaceChildren(...adopt(freshFinished.childNodes));
        if (!freshRunning) return;
        const shown = new Set(Array.from(running.querySelectorAll("tr[data-job]")).map((r) => r.dataset.job));
        const added = Array.from(freshRunning.querySelectorAll("tr[data-job]")).filter((r) => !shown.has(r.dataset.job));
        if (!added.length) return;
        const body = running.querySelector("tbody");
        if (body) body.append(...adopt(added));
        else running.replaceChildren(...adopt(freshRunning.childNodes));
      })
      .catch(() => null)
      .finally(() => window.setTimeout(refreshLists, LISTS_EVERY_MS));
  }

  document.addEventListener("DOMContentLoaded", () => {
    window.setTimeout(tick, EVERY_MS);
    window.setTimeout(refreshLists, LISTS_EVERY_MS);
  });
})();
