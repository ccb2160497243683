// The inbox page: a saved answer picked from the list fills the reply box; "select all" ticks
// every item for a bulk action. Without scripts the first saved answer is already in the box.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const picker of document.querySelectorAll("select[data-template-for]")) {
    picker.addEventListener("change", () => {
      const box = document.getElementById(picker.dataset.templateFor);
      const chosen = picker.selectedOptions[0];
      if (box && chosen) box.value = chosen.dataset.text || "";
    });
  }
  const all = document.querySelector("input[data-select-all]");
  if (all) {
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll("input[data-select-item]")) {
        box.checked = all.checked;
      }
    });
  }
});
