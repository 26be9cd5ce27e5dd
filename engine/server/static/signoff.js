// Progressive enhancement only: every page works without this script.
// - A field other fields depend on (dependsOn) refreshes the form when it changes, so the
//   fields that apply appear at once (without the script: the "Update the form" button).
// - The pending list's "mark all" box marks or clears every row.
(function () {
  "use strict";
  document.documentElement.classList.add("js");  // styles (and tests) can tell the script ran
  document.querySelectorAll("[data-refresh]").forEach(function (el) {
    el.addEventListener("change", function () {
      var button = document.getElementById("refresh");
      if (button && button.form) { button.form.requestSubmit(button); }
    });
  });
  var all = document.getElementById("mark-all");
  var label = document.getElementById("mark-all-label");
  if (all && label) {
    label.hidden = false;
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=id]").forEach(function (box) { box.checked = all.checked; });
    });
  }
})();
