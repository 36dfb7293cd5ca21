// Poll an audit's progress (stage, done/total, ETA) until it finishes, then reload once.
(function () {
  const node = document.getElementById("audit-poll");
  if (!node || !node.dataset.active) return;
  function tick() {
    fetch(node.dataset.url, {credentials: "same-origin"}).then(r => r.json()).then(function (audit) {
      const p = audit.progress;
      document.getElementById("audit-status").textContent = p.status;
      const bar = document.getElementById("audit-progress");
      bar.max = p.total || 1; bar.value = p.done;
      document.getElementById("audit-stage").textContent = p.stage + " " + p.done + "/" + p.total + (p.eta_seconds ? ", about " + Math.round(p.eta_seconds) + " s left" : "");
      if (p.status === "queued" || p.status === "running") setTimeout(tick, 1500); else window.location.reload();
    });
  }
  setTimeout(tick, 1000);
})();
