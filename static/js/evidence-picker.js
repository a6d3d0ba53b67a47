/* Evidence picker: a text filter over the rows (title, kind, classification). Without JavaScript the picker is a
   plain list of checkboxes; hidden rows keep their checked state and are still submitted. */
(function () {
  "use strict";

  var search = document.querySelector("[data-picker-search]");
  var input = document.getElementById("picker-filter");
  var rows = Array.prototype.slice.call(document.querySelectorAll("[data-picker-row]"));
  var empty = document.querySelector("[data-picker-empty]");
  if (!search || !input || !rows.length) {
    return;
  }
  search.hidden = false;

  function filter() {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    rows.forEach(function (row) {
      var text = row.textContent.toLowerCase();
      var match = words.every(function (word) { return text.indexOf(word) !== -1; });
      row.hidden = !match;
      shown += match ? 1 : 0;
    });
    if (empty) {
      empty.hidden = shown !== 0;
    }
  }

  input.addEventListener("input", filter);
  filter(); // a value the browser restored (back button) applies at once
})();
