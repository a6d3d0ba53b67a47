/* The sign form's meaning follows the decision: approving fills in the stage's approval meaning, rejecting its
   rejection meaning. A meaning the signer typed is left alone. Without this script the field stays blank and
   the server signs with the meaning of the chosen decision. */
(function () {
  "use strict";

  var form = document.querySelector('[data-testid="sign-form"]');
  var meaning = form && form.querySelector("input[data-approve-meaning]");
  if (!meaning) {
    return;
  }
  var defaults = {
    approve: meaning.getAttribute("data-approve-meaning") || "",
    reject: meaning.getAttribute("data-reject-meaning") || ""
  };
  var decisions = form.querySelectorAll('input[name="decision"]');

  function chosen() {
    for (var i = 0; i < decisions.length; i += 1) {
      if (decisions[i].checked) {
        return decisions[i].value;
      }
    }
    return "approve";
  }

  function typedBySigner() {
    var value = meaning.value.trim();
    return value !== "" && value !== defaults.approve && value !== defaults.reject;
  }

  function follow() {
    var decision = chosen();
    if (!typedBySigner()) {
      meaning.value = defaults[decision] || "";
    }
    meaning.setAttribute("placeholder", defaults[decision] || "");
  }

  for (var i = 0; i < decisions.length; i += 1) {
    decisions[i].addEventListener("change", follow);
  }
  follow();
})();
