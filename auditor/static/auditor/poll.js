// Poll a training run's progress through the API until it stops, then reload once.
(function () {
  const node = document.getElementById("run-poll");
  if (!node || !node.dataset.active) return;
  function tick() {
    fetch(node.dataset.url, {credentials: "same-origin"}).then(r => r.json()).then(function (run) {
      const p = run.progress || {};
      document.getElementById("run-status").textContent = run.status;
      document.getElementById("run-progress").value = p.fraction_done || 0;
      document.getElementById("run-progress-text").textContent = "step " + (p.step || 0) + ", " + (p.elapsed_seconds || 0) + " s";
      document.getElementById("run-losses").textContent = Object.entries(p.losses || {}).map(([k, v]) => k + " " + Number(v).toFixed(4)).join("  ");
      if (run.status === "queued" || run.status === "running") setTimeout(tick, 2000); else window.location.reload();
    });
  }
  setTimeout(tick, 1000);
})();
