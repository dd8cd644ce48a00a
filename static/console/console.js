// Console behaviour that htmx does not cover: copy buttons and the language menu. Event delegation keeps it
// working for content htmx swaps in later.
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy failed")); }
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) { return; }
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    copyText(source.textContent.trim()).then(function () {
      button.textContent = button.getAttribute("data-copied") || label;
      button.classList.add("copied");
    }, function () {
      var range = document.createRange();  // leave the text selected so the user can copy it by hand
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    });
    window.setTimeout(function () {
      button.textContent = label;
      button.classList.remove("copied");
    }, 2500);
  });

  document.addEventListener("change", function (event) {
    var form = event.target.closest("form[data-autosubmit]");
    if (form && event.target.tagName === "SELECT") { form.submit(); }
  });
})();

// On a narrow screen the daily chart scrolls sideways: start at its right end, where today is.
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  document.querySelectorAll("[data-scroll-end]").forEach(function (box) {
    box.scrollLeft = box.scrollWidth;
  });
});
