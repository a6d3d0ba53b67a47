/* Live governance dashboard: re-fetch the server-rendered panels every few seconds and swap them in place.
   No framework: the server renders the HTML, this script only replaces it, keeping keyboard focus, the
   horizontal scroll of wide tables and opened "Show the numbers" disclosures across refreshes. */
(function () {
  "use strict";

  var container = document.getElementById("dashboard-panels");
  if (!container || !window.fetch) {
    return;
  }
  var seconds = Math.min(30, Math.max(1, parseFloat(container.getAttribute("data-refresh-seconds")) || 15));
  var panelsUrl = container.getAttribute("data-panels-url");
  var status = document.getElementById("refresh-status");
  var toggle = document.getElementById("refresh-toggle");
  var paused = false;
  var stopped = false;
  var timer = null;
  var inFlight = false;

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  // The viewer's zone, as the server renders times (docs/pages.md): "2026-12-01 11:14:26 CET".
  var timeZone = (status && status.getAttribute("data-time-zone")) || "UTC";

  function clock(date) {
    try {
      var parts = {};
      new Intl.DateTimeFormat("en-GB", {
        timeZone: timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
        minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short"
      }).formatToParts(date).forEach(function (part) { parts[part.type] = part.value; });
      return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute + ":" +
        parts.second + " " + parts.timeZoneName;
    } catch (error) {
      return date.toISOString().slice(0, 19).replace("T", " ") + " UTC";
    }
  }

  function focusables() {
    return Array.prototype.slice.call(container.querySelectorAll("a[href], button, [tabindex], summary"));
  }

  function remember() {
    var state = { focused: false, focusHref: null, focusPanel: null, scroll: [], open: [] };
    var active = document.activeElement;
    if (active && container.contains(active)) {
      var panel = active.closest("[data-panel]");
      state.focused = true;
      state.focusHref = active.getAttribute("href");
      state.focusPanel = panel ? panel.getAttribute("data-panel") : null;
    }
    container.querySelectorAll(".table-scroll").forEach(function (el, index) {
      state.scroll[index] = el.scrollLeft;
    });
    container.querySelectorAll("details").forEach(function (el, index) {
      state.open[index] = el.open;
    });
    return state;
  }

  function restore(state) {
    container.querySelectorAll(".table-scroll").forEach(function (el, index) {
      el.scrollLeft = state.scroll[index] || 0;
    });
    container.querySelectorAll("details").forEach(function (el, index) {
      el.open = Boolean(state.open[index]);
    });
    if (!state.focused) {
      return;
    }
    var target = null;
    if (state.focusHref) {
      target = focusables().filter(function (el) { return el.getAttribute("href") === state.focusHref; })[0] || null;
    }
    if (!target && state.focusPanel) {
      // The focused row is gone (e.g. its stage was approved): keep the keyboard user in the same panel.
      target = container.querySelector('[data-panel="' + state.focusPanel + '"]');
      if (target) {
        target.setAttribute("tabindex", "-1");
      }
    }
    if (target) {
      target.focus({ preventScroll: true });
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (!stopped) {
      timer = setTimeout(refresh, seconds * 1000);
    }
  }

  function editing() {
    // An open escalation outcome form would lose what the operator typed: wait until it is closed or sent.
    return Boolean(container.querySelector("details.escalation-record[open]"));
  }

  function refresh() {
    if (paused || inFlight || document.hidden) {
      schedule();
      return;
    }
    if (editing()) {
      say("Live updates wait while you record an escalation outcome");
      schedule();
      return;
    }
    inFlight = true;
    fetch(panelsUrl + window.location.search, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { "X-Requested-With": "fetch", Accept: "text/html" }
    })
      .then(function (response) {
        if (response.redirected || response.status === 401 || response.status === 403) {
          stopped = true;
          throw new Error("Your session has ended: reload the page to sign in again.");
        }
        if (!response.ok) {
          throw new Error("Live update failed (HTTP " + response.status + "); retrying.");
        }
        return response.text();
      })
      .then(function (html) {
        var state = remember();
        container.innerHTML = html;
        restore(state);
        container.setAttribute("data-refreshed-at", new Date().toISOString());
        say("Updated " + clock(new Date()));
      })
      .catch(function (error) {
        say(error && error.message ? error.message : "Live update failed; retrying.");
      })
      .then(function () {
        inFlight = false;
        schedule();
      });
  }

  if (toggle) {
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      paused = !paused;
      toggle.setAttribute("aria-pressed", paused ? "true" : "false");
      toggle.textContent = paused ? "Resume live updates" : "Pause live updates";
      say(paused ? "Live updates paused" : "Live updates resumed");
      if (!paused) {
        refresh();
      }
    });
  }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !paused) {
      refresh();
    }
  });
  container.setAttribute("data-live", "true");
  schedule();
})();
