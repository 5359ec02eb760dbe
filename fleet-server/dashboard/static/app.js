// Kogge dashboard: live updates over a websocket. The pages work without
// this script; it only keeps them current.
(function () {
  "use strict";
  var strings = document.getElementById("live-strings");
  var cont = document.getElementById("continue");
  if (cont && cont.getAttribute("href")) {
    window.location.assign(cont.getAttribute("href"));
    return;
  }
  if (!strings || document.body.getAttribute("data-live") !== "1" || !("WebSocket" in window)) {
    return;
  }
  var s = function (k) { return strings.getAttribute("data-" + k) || ""; };
  var fill = function (tpl, a, b) { return tpl.replace("%s", a).replace("%s", b || ""); };
  var status = document.getElementById("live-status");
  var announcer = document.getElementById("live-announce");
  var announce = function (text) {
    if (!announcer) { return; }
    announcer.textContent = "";
    window.setTimeout(function () { announcer.textContent = text; }, 50);
  };
  var setStatus = function (on) {
    if (!status) { return; }
    status.setAttribute("data-state", on ? "on" : "off");
    status.textContent = (on ? "● " : "◌ ") + s(on ? "connected" : "disconnected");
  };
  var badge = function (state) {
    var span = document.createElement("span");
    span.className = "badge state-" + state;
    var icon = document.createElement("span");
    icon.setAttribute("aria-hidden", "true");
    icon.textContent = state === "online" ? "● " : "✕ ";
    span.appendChild(icon);
    span.appendChild(document.createTextNode(s(state)));
    return span;
  };
  var handlers = {
    presence: function (m) {
      var cells = document.querySelectorAll("[data-presence]");
      var hit = false;
      for (var i = 0; i < cells.length; i++) {
        if (cells[i].getAttribute("data-presence") !== m.device) { continue; }
        cells[i].replaceChildren(badge(m.state));
        cells[i].setAttribute("data-state", m.state);
        hit = true;
      }
      if (hit) { announce(fill(s(m.state === "online" ? "device-online" : "device-offline"), m.device)); }
    },
    counts: function (m) {
      var els = document.querySelectorAll("[data-count]");
      for (var i = 0; i < els.length; i++) {
        var k = els[i].getAttribute("data-count");
        if (m.counts && k in m.counts) { els[i].textContent = String(m.counts[k]); }
      }
    },
    alert: function (m) {
      var lists = document.querySelectorAll("[data-alert-list]");
      for (var i = 0; i < lists.length; i++) {
        var empty = lists[i].querySelector("[data-empty]");
        if (empty) { empty.remove(); }
        var li = document.createElement("li");
        li.setAttribute("data-alert", m.id);
        var b = document.createElement("span");
        b.className = "badge alert-" + m.state;
        b.textContent = (m.state === "firing" ? "▲ " : "✔ ") + s(m.state);
        var a = document.createElement("a");
        a.href = "/alerts/" + encodeURIComponent(m.id);
        a.textContent = m.rule;
        var strong = document.createElement("strong");
        strong.textContent = m.subject;
        li.append(b, " ", a, " – ", strong, ": " + m.message);
        lists[i].insertBefore(li, lists[i].firstChild);
      }
      announce(fill(s(m.state === "firing" ? "alert-fired" : "alert-resolved"), m.rule, m.subject));
    },
    command: function (m) {
      var row = document.querySelector('[data-command="' + CSS.escape(m.id) + '"]');
      if (!row) { return; }
      var st = row.querySelector("[data-command-state]");
      if (st) { st.textContent = s("cmd-" + m.state) || m.state; }
      var res = row.querySelector("[data-command-result]");
      if (res && m.reason) { res.textContent = m.reason + (m.message ? ": " + m.message : ""); }
      row.setAttribute("data-state", m.state);
      announce(fill(s("command-update"), m.device, s("cmd-" + m.state)));
    }
  };
  var delay = 1000;
  var connect = function () {
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    ws.onopen = function () { delay = 1000; setStatus(true); };
    ws.onmessage = function (ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      var h = handlers[m.type];
      if (h) { h(m); }
    };
    ws.onclose = function (ev) {
      setStatus(false);
      if (ev.code === 1008) { return; } // the session ended
      window.setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  };
  connect();
}());
