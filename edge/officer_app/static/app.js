/* The officer app's only script (no build step, no other site): live updates by server-sent events, one
   submit per Pay, the article filter, the IIN's check digit as it is typed, Enter that never submits the stop
   form, and a heartbeat while the officer types so the app does not lock under his fingers. */
(function () {
  "use strict";
  var body = document.body;
  var csrf = body.getAttribute("data-csrf") || "";

  /* live updates: the server sends the fragments that changed, rendered by the page's own templates */
  var live = body.getAttribute("data-live");
  if (live && window.EventSource) {
    var source = new EventSource(live);
    source.onmessage = function (e) {
      var data = JSON.parse(e.data);
      if (data.lock) { source.close(); window.location.assign(data.lock); return; }
      if (data.status) { var bar = document.getElementById("status-bar"); if (bar) { bar.innerHTML = data.status; } }
      if (data.panel !== undefined) {
        var panel = document.getElementById("live-panel");
        if (panel) { panel.innerHTML = data.panel; onceForms(panel); }
      }
    };
  }

  /* a form marked data-once (Pay) is sent once: its buttons are disabled as it goes */
  function onceForms(root) {
    var forms = root.querySelectorAll("form");
    for (var i = 0; i < forms.length; i++) {
      forms[i].addEventListener("submit", function (ev) {
        var f = ev.currentTarget;
        if (f.getAttribute("data-sent") === "1") { ev.preventDefault(); return; }
        f.setAttribute("data-sent", "1");
        window.setTimeout(function () {
          var b = f.querySelectorAll("button");
          for (var j = 0; j < b.length; j++) { b[j].disabled = true; }
        }, 0);
      });
    }
  }
  onceForms(document);

  /* the article picker: a number ("592", "592 3", "592.3-1", "592 ч.3") picks articles by their code; words
     must each appear in the number or a title (any language) */
  var filters = document.querySelectorAll("input[data-filter]");
  for (var k = 0; k < filters.length; k++) {
    filters[k].addEventListener("input", function (ev) {
      var raw = ev.target.value.toLowerCase().replace(/ст\.?|статья|бап|часть|ч\.?|part/g, " ");
      var words = raw.replace(/[.\/,]+/g, " ").split(/\s+/).filter(Boolean);
      var number = words.length && words.every(function (w) { return /^\d+(-\d+)?$/.test(w); }) ? words.join(".") : null;
      var items = document.querySelectorAll(ev.target.getAttribute("data-filter"));
      for (var i = 0; i < items.length; i++) {
        var show;
        if (number !== null) {
          var code = items[i].getAttribute("data-code");
          show = code === number || code.indexOf(number + ".") === 0 || code.indexOf(number + "-") === 0;
        } else {
          var text = items[i].getAttribute("data-search");
          show = words.every(function (w) { return text.indexOf(w) >= 0; });
        }
        items[i].hidden = !show;
      }
    });
  }

  /* IIN: 12 digits whose last is the check digit of the first 11 (two passes of weights, mod 11) */
  function iinState(value) {
    var s = value.replace(/[\s-]/g, "");
    if (!/^\d*$/.test(s) || s.length > 12) { return "bad"; }
    if (s.length < 12) { return "short"; }
    var d = s.split("").map(Number), c = 0, i;
    for (i = 0; i < 11; i++) { c += d[i] * (i + 1); }
    c = c % 11;
    if (c === 10) {
      var w2 = [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2];
      c = 0;
      for (i = 0; i < 11; i++) { c += d[i] * w2[i]; }
      c = c % 11;
      if (c === 10) { return "bad"; }
    }
    return c === d[11] ? "ok" : "bad";
  }
  var iins = document.querySelectorAll("input[data-check=iin]");
  for (var m = 0; m < iins.length; m++) {
    iins[m].addEventListener("input", function (ev) {
      var note = document.getElementById(ev.target.id + "-live");
      var state = iinState(ev.target.value);
      ev.target.setAttribute("data-iin", state);
      if (note) {
        note.textContent = ev.target.value ? note.getAttribute("data-" + state) : "";
        note.className = "live-check " + state;
      }
    });
  }

  /* Enter in a field of the stop form goes to the next field; only an article button draws up the protocol */
  var stopForm = document.getElementById("stop-form");
  if (stopForm) {
    stopForm.addEventListener("keydown", function (ev) {
      if (ev.key !== "Enter" || ev.target.tagName !== "INPUT") { return; }
      ev.preventDefault();
      var fields = stopForm.querySelectorAll("input:not([type=hidden])");
      for (var i = 0; i < fields.length - 1; i++) {
        if (fields[i] === ev.target) { fields[i + 1].focus(); return; }
      }
    });
  }

  /* taps and typing are the officer's activity: tell the device now and then, so it does not lock */
  var last = Date.now();
  function active() {
    if (!csrf || Date.now() - last < 20000) { return; }
    last = Date.now();
    var form = new FormData();
    form.append("csrf", csrf);
    window.fetch("/activity", { method: "POST", body: form, credentials: "same-origin" }).then(function (r) {
      if (r.redirected && /\/(lock|signin)/.test(r.url)) { window.location.assign(r.url); }
    });
  }
  document.addEventListener("keydown", active, true);
  document.addEventListener("pointerdown", active, true);
})();
