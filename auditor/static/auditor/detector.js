// Poll a detector run (progress) and its scorings through the API while they are active, then reload once.
(function () {
  const node = document.getElementById("detector-poll");
  if (!node) return;
  function json(url) { return fetch(url, {credentials: "same-origin"}).then(r => r.json()); }
  function tickRun() {
    json(node.dataset.url).then(function (run) {
      const p = run.progress || {};
      document.getElementById("run-status").textContent = run.status;
      document.getElementById("run-progress").value = p.fraction_done || 0;
      let text = "epoch " + (p.epoch || 0) + (p.max_epochs ? "/" + p.max_epochs : "") + ", step " + (p.steps || 0) + ", " + (p.elapsed_seconds || 0) + " s";
      if (p.validation_auc !== undefined && p.validation_auc !== null) text += ", validation AUC " + Number(p.validation_auc).toFixed(3);
      document.getElementById("run-progress-text").textContent = text;
      if (run.status === "queued" || run.status === "running") setTimeout(tickRun, 2000); else window.location.reload();
    });
  }
  function tickScorings() {
    json(node.dataset.scoringsUrl).then(function (page) {
      let active = false;
      (page.results || []).forEach(function (s) {
        const cell = document.getElementById("scoring-" + s.id + "-progress");
        if (cell) cell.textContent = s.processed + "/" + s.total;
        if (s.status === "queued" || s.status === "running") active = true;
      });
      if (active) setTimeout(tickScorings, 2000); else window.location.reload();
    });
  }
  if (node.dataset.active) setTimeout(tickRun, 1000);
  else if (node.dataset.scoringsActive) setTimeout(tickScorings, 1000);
})();
