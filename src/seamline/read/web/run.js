// Shows one handoff's recorded request and response. Data is untrusted: only textContent, never innerHTML.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("run-data").textContent);
  var panel = document.getElementById("detail");
  var rows = document.querySelectorAll(".wf-row[data-index]");

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function pretty(body) {
    if (body === undefined || body === null || body === "") return "(empty)";
    try { return JSON.stringify(JSON.parse(body), null, 2); } catch (e) { return String(body); }
  }
  function headers(map) {
    var keys = Object.keys(map || {}).sort();
    if (!keys.length) return "(none)";
    return keys.map(function (k) { return k + ": " + map[k]; }).join("\n");
  }
  function block(parent, title, text) {
    parent.appendChild(el("h4", title));
    parent.appendChild(el("pre", text));
  }
  function show(index) {
    var h = data.handoffs[index];
    if (!h) return;
    rows.forEach(function (r) { r.classList.toggle("selected", r.getAttribute("data-index") === String(index)); });
    panel.replaceChildren();
    panel.appendChild(el("h3", h.handoff + " · " + h.method + " " + h.url));
    var facts = [
      "status " + h.status + " · outcome " + h.outcome + " · error " + h.error_class +
        " · attempt " + h.attempt + " · safety " + (h.safety || "—"),
      "duration " + h.duration_ms + " ms · ttfb " + h.ttfb_ms + " ms · started " + h.ts,
      "trace " + h.trace_id + " · span " + h.span_id,
    ];
    if (h.error_detail) facts.push("detail: " + h.error_detail);
    if (h.violations && h.violations.length) facts.push("violations: " + h.violations.join(", "));
    var ext = Object.keys(h.external_ids || {});
    if (ext.length) facts.push("external ids: " + ext.map(function (k) { return k + "=" + h.external_ids[k]; }).join(", "));
    if (h.missing_fields && h.missing_fields.length) facts.push("missing fields: " + h.missing_fields.join(", "));
    if (h.unknown_fields && h.unknown_fields.length) facts.push("unknown fields: " + h.unknown_fields.join(", "));
    facts.forEach(function (f) { panel.appendChild(el("div", f)); });
    var cols = el("div", null, "cols");
    var req = el("div"), resp = el("div");
    block(req, "Request headers", headers(h.request_headers));
    block(req, "Request body" + (h.request_truncated ? " (truncated, " + h.request_bytes + " bytes)" : ""), pretty(h.request_body));
    block(resp, "Response headers", headers(h.response_headers));
    block(resp, "Response body" + (h.response_truncated ? " (truncated, " + h.response_bytes + " bytes)" : ""), pretty(h.response_body));
    cols.appendChild(req);
    cols.appendChild(resp);
    panel.appendChild(cols);
    panel.hidden = false;
  }
  rows.forEach(function (row) {
    var index = Number(row.getAttribute("data-index"));
    row.addEventListener("click", function () { show(index); });
    row.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); show(index); }
    });
  });
  // The server marks failed rows (Seamline's refusals included): the outcome vocabulary lives in Python only.
  var failed = document.querySelector(".wf-row[data-failed]");
  if (location.hash === "#first-failure" && failed) show(Number(failed.getAttribute("data-index")));
})();
