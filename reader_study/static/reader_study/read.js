// Keyboard answering for the reading page. The form works without this script (mouse + button); the script
// adds one key per answer, Enter to submit, P for the previous case, and guards against double submission.
(function () {
  "use strict";
  const form = document.getElementById("answer-form");
  if (!form) return;
  const byKey = {};
  form.querySelectorAll("input[data-key]").forEach(function (input) { byKey[input.dataset.key] = input; });
  const slider = document.getElementById("confidence-slider");
  const sliderValue = document.getElementById("confidence-value");
  const incomplete = document.getElementById("incomplete");
  const submitButton = document.getElementById("send-answer");
  let sent = false;

  function setSlider(value) {
    slider.value = String(Math.max(0, Math.min(100, value)));
    slider.dataset.touched = "1";
    sliderValue.textContent = slider.value;
    refresh();
  }

  function missingQuestions() {
    const missing = [];
    form.querySelectorAll("fieldset[data-question]").forEach(function (fieldset) {
      const radios = fieldset.querySelectorAll("input[type=radio]");
      const answered = radios.length ? Array.prototype.some.call(radios, function (r) { return r.checked; })
                                     : slider && slider.dataset.touched === "1";
      fieldset.classList.toggle("rs-missing", !answered);
      if (!answered) missing.push(fieldset.dataset.question);
    });
    return missing;
  }

  function refresh() {
    const missing = missingQuestions();
    if (!missing.length) incomplete.hidden = true;
    form.querySelectorAll("fieldset").forEach(function (f) { if (!missing.length) f.classList.remove("rs-missing"); });
  }

  function send() {
    if (sent) return;  // a second Enter or click must not post the same answer again
    if (missingQuestions().length) { incomplete.hidden = false; return; }
    sent = true;
    submitButton.disabled = true;
    form.submit();
  }

  form.addEventListener("submit", function (event) { event.preventDefault(); send(); });
  form.addEventListener("change", refresh);
  if (slider) slider.addEventListener("input", function () { setSlider(Number(slider.value)); });
  form.querySelectorAll("fieldset").forEach(function (f) { f.classList.remove("rs-missing"); });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    let key = event.key.toLowerCase();
    if (event.shiftKey && /^Digit[1-9]$/.test(event.code)) key = "shift+" + event.code.slice(5);
    if (key === "enter") { event.preventDefault(); send(); return; }
    if (key === "p" && form.dataset.previous) { event.preventDefault(); window.location.href = form.dataset.previous; return; }
    if (slider && !event.shiftKey) {
      if (/^[0-9]$/.test(key)) { event.preventDefault(); setSlider(Number(key) * 10); return; }
      if (key === "=") { event.preventDefault(); setSlider(100); return; }
      if ((key === "arrowleft" || key === "arrowright") && document.activeElement !== slider) {
        event.preventDefault();
        setSlider(Number(slider.value) + (key === "arrowleft" ? -5 : 5));
        return;
      }
    }
    const input = byKey[key];
    if (input) { event.preventDefault(); input.checked = true; refresh(); }
  });
})();
