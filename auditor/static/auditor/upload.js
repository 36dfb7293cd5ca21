// Upload with a progress bar, then poll the import job until it finishes.
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    bar.hidden = false; bar.value = 0;
    request.upload.onprogress = function (e) {
      if (e.lengthComputable) { bar.value = e.loaded / e.total; status.textContent = "Uploading " + Math.round(100 * e.loaded / e.total) + "%"; }
    };
    request.onload = function () {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (err) { /* not JSON */ }
      if (request.status !== 202) { status.textContent = "Upload failed: " + (body.detail || request.status); return; }
      poll(body.status_url);
    };
    request.onerror = function () { status.textContent = "Upload failed: network error"; };
    request.send(new FormData(form));
  });
  function poll(url) {
    fetch(url, {credentials: "same-origin"}).then(r => r.json()).then(function (job) {
      if (job.total) bar.value = job.processed / job.total;
      status.textContent = "Importing: " + job.processed + " / " + job.total + " (" + job.status + ")";
      if (job.status === "succeeded" || job.status === "failed") {
        status.textContent = "Import " + job.status + ": " + job.message;
        setTimeout(function () { window.location.reload(); }, 800);
      } else {
        setTimeout(function () { poll(url); }, 500);
      }
    });
  }
})();
