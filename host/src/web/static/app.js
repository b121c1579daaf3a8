// syshost web frontend: progressive enhancement only. Every page and form
// works without this script; it adds live password-rule feedback, a filter
// and "select all" for checkbox lists and tables, and confirm dialogs.
(function () {
  "use strict";

  // Live feedback on new passwords: <ul class="pw-rules" data-for="id">.
  function checkRule(rule, value) {
    if (rule.indexOf("min:") === 0) return Array.from(value).length >= parseInt(rule.slice(4), 10);
    if (rule === "lower") return /\p{Ll}/u.test(value);
    if (rule === "upper") return /\p{Lu}/u.test(value);
    if (rule === "digit") return /\p{Nd}/u.test(value);
    if (rule === "symbol") return /[^\p{L}\p{Nd}]/u.test(value);
    return false;
  }
  document.querySelectorAll("ul.pw-rules[data-for]").forEach(function (list) {
    var input = document.getElementById(list.getAttribute("data-for"));
    if (!input) return;
    function update() {
      list.querySelectorAll("li[data-rule]").forEach(function (li) {
        li.classList.toggle("ok", checkRule(li.getAttribute("data-rule"), input.value));
      });
    }
    input.addEventListener("input", update);
    update();
  });

  // Checkbox lists: filter box and "select all shown".
  document.querySelectorAll("fieldset.checklist").forEach(function (set) {
    var tools = set.querySelector(".checklist-tools");
    if (!tools) return;
    tools.hidden = false;
    var filter = tools.querySelector(".checklist-filter");
    var all = tools.querySelector(".checklist-all");
    var choices = Array.from(set.querySelectorAll(".choice-list label.choice"));
    function shown() {
      return choices.filter(function (c) { return !c.hidden; })
        .map(function (c) { return c.querySelector("input"); })
        .filter(function (i) { return i && !i.disabled; });
    }
    function syncAll() {
      var boxes = shown();
      all.checked = boxes.length > 0 && boxes.every(function (b) { return b.checked; });
    }
    filter.addEventListener("input", function () {
      var q = filter.value.trim().toLowerCase();
      choices.forEach(function (c) { c.hidden = q !== "" && c.textContent.toLowerCase().indexOf(q) < 0; });
      syncAll();
    });
    all.addEventListener("change", function () {
      shown().forEach(function (b) { b.checked = all.checked; });
    });
    set.addEventListener("change", function (e) { if (e.target !== all) syncAll(); });
    syncAll();
  });

  // Tables with bulk selection: the header checkbox selects every row.
  document.querySelectorAll("input.select-all[data-form]").forEach(function (all) {
    var form = all.getAttribute("data-form");
    var boxes = Array.from(document.querySelectorAll('input[type=checkbox][form="' + form + '"]'));
    if (!boxes.length) return;
    all.hidden = false;
    all.addEventListener("change", function () { boxes.forEach(function (b) { b.checked = all.checked; }); });
  });

  // The account menu (a <details>) closes on Escape and on clicks outside.
  var menu = document.querySelector("details.account");
  if (menu) {
    document.addEventListener("click", function (e) {
      if (menu.open && !menu.contains(e.target)) menu.open = false;
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && menu.open) {
        menu.open = false;
        menu.querySelector("summary").focus();
      }
    });
  }

  // Confirm dialogs: forms and buttons with data-confirm.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var submitter = e.submitter;
    var question = (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) e.preventDefault();
  });
})();
