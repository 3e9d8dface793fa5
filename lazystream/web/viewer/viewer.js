// The lazystream viewer: start a run or open a session, and watch every event live.
// No build step, no dependencies. Reads GET sessions/{sid}/events (SSE) with fetch, so a
// bearer token can go in a header; resumes after a drop with ?after=<last seq>, and after a
// reload from the session id in the URL hash (rebuilt from seq 0: nothing twice).
"use strict";

const $ = (sel) => document.querySelector(sel);
const api = (path) => new URL(path, document.baseURI).toString();
const el = (tag, cls, text) => {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
};
const pretty = (value) => {
  if (typeof value === "string") {
    try { return JSON.stringify(JSON.parse(value), null, 2); } catch (e) { return value; }
  }
  return JSON.stringify(value, null, 2);
};

let token = sessionStorage.getItem("lazystream-token") || "";
let view = null;      // the session on screen
let generation = 0;   // bumps when another session is opened, so old readers stop

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

async function getJSON(path) {
  const r = await fetch(api(path), { headers: headers() });
  if (r.status === 401) { askToken(); throw new Error("a bearer token is needed"); }
  return [r.status, await r.json()];
}

function askToken() {
  const input = $("#token");
  input.hidden = false;
  input.onchange = () => { token = input.value.trim(); sessionStorage.setItem("lazystream-token", token); boot(); };
}

// --- one session on screen -------------------------------------------------------------
class SessionView {
  constructor(sid) {
    this.sid = sid;
    this.lastSeq = 0;
    this.count = 0;
    this.lanes = new Map();       // lineage -> items element
    this.messages = new Map();    // message id -> card
    this.open = new Map();        // lineage -> open message id
    this.calls = new Map();       // tool call id -> {args element, text}
    this.tools = new Map();       // tool call id -> tool card
    this.usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
    this.runUsage = null;
    this.status = "connecting";
    $("#lanes").replaceChildren();
    $("#errors").replaceChildren();
    $("#log tbody").replaceChildren();
    $("#current-sid").textContent = sid;
    this.render();
  }

  lane(ns) {
    const key = ns.length ? ns.join(" / ") : "session";
    let items = this.lanes.get(key);
    if (!items) {
      const lane = el("div", "lane");
      lane.dataset.lineage = key;
      lane.append(el("h3", "", key));
      items = el("div", "items");
      lane.append(items);
      $("#lanes").append(lane);
      this.lanes.set(key, items);
    }
    return items;
  }

  messageCard(event, id, model) {
    const card = el("div", "card message open");
    card.dataset.message = id;
    const head = el("div", "head");
    head.append(el("span", "", model ? "assistant · " + model : "assistant"), el("span", "right finish", ""));
    card.append(head);
    card.textEl = el("div", "text");
    card.append(card.textEl);
    this.lane(event.ns).append(card);
    this.messages.set(id, card);
    return card;
  }

  currentMessage(event) {
    const key = event.ns.join("/");
    const id = this.open.get(key);
    if (id && this.messages.has(id)) return this.messages.get(id);
    const loose = "loose-" + key + "-" + event.seq;
    this.open.set(key, loose);
    return this.messageCard(event, loose, null);
  }

  apply(e) {
    if (e.seq <= this.lastSeq) return;   // at-least-once transport, exactly-once screen
    this.lastSeq = e.seq;
    this.count += 1;
    this.log(e);
    const d = e.data;
    switch (e.kind) {
      case "run_start": this.status = "running"; break;
      case "message_start": {
        this.open.set(e.ns.join("/"), d.id);
        this.messageCard(e, d.id, d.model);
        break;
      }
      case "text": this.currentMessage(e).textEl.append(d); break;
      case "think": {
        const card = this.currentMessage(e);
        if (!card.thinkEl) { card.thinkEl = el("div", "think"); card.insertBefore(card.thinkEl, card.textEl); }
        card.thinkEl.append(d);
        break;
      }
      case "tool_call_start": {
        const card = d.message && this.messages.get(d.message) || this.currentMessage(e);
        this.toolCall(card, d.id, d.name);
        break;
      }
      case "tool_call_delta": {
        const call = this.calls.get(d.id);
        if (call) { call.text += d.delta; call.args.textContent = call.text; }
        break;
      }
      case "tool_call": {
        let call = this.calls.get(d.id);
        if (!call) {
          const card = d.message && this.messages.get(d.message) || this.currentMessage(e);
          call = this.toolCall(card, d.id, d.name);
        }
        call.args.textContent = pretty(d.arguments);
        call.box.classList.add("complete");
        break;
      }
      case "usage": {
        for (const k of Object.keys(this.usage)) if (typeof d[k] === "number") this.usage[k] += d[k];
        const card = d.message && this.messages.get(d.message);
        if (card) card.querySelector(".finish").dataset.tokens = d.total_tokens;
        break;
      }
      case "message_end": {
        const card = this.messages.get(d.id);
        if (card) {
          card.classList.remove("open");
          const tokens = card.querySelector(".finish").dataset.tokens;
          card.querySelector(".finish").textContent = d.finish_reason + (tokens ? " · " + tokens + " tok" : "");
        }
        this.open.delete(e.ns.join("/"));
        break;
      }
      case "tool_start": this.toolCard(e, d); break;
      case "tool_result": {
        const card = this.tools.get(d.id) || this.toolCard(e, d);
        card.querySelector(".state").textContent = d.error ? "failed" : "done";
        if (d.error) card.classList.add("failed");
        const result = el("pre", "result", d.error ? String(d.error) : pretty(d.content));
        result.dataset.role = "result";
        card.append(result);
        break;
      }
      case "trace": this.lane(e.ns).append(el("div", "trace", (d && d.text) || JSON.stringify(d))); break;
      case "status": this.lane(e.ns).append(el("div", "status-line", "● " + d)); break;
      case "error": {
        const box = el("div", "error", (d.type || "Error") + ": " + d.message);
        $("#errors").append(box);
        break;
      }
      case "run_end": this.runUsage = d.usage || null; break;
      case "end": {
        this.status = d.status;
        for (const card of this.messages.values()) card.classList.remove("open");
        if (d.error) $("#errors").append(el("div", "error", d.error.type + ": " + d.error.message));
        break;
      }
      default:
        if (e.queue !== "lazy_control") this.lane(e.ns).append(el("div", "trace", e.kind + ": " + JSON.stringify(d)));
    }
  }

  toolCall(card, id, name) {
    const box = el("div", "toolcall");
    box.dataset.call = id;
    box.append(el("span", "name", "→ " + name));
    const args = el("pre", "args", "");
    box.append(args);
    card.append(box);
    const call = { box, args, text: "" };
    this.calls.set(id, call);
    return call;
  }

  toolCard(e, d) {
    const card = el("div", "card tool");
    card.dataset.tool = d.id;
    const head = el("div", "head");
    head.append(el("span", "name", d.name), el("span", "right state", "running…"));
    card.append(head);
    if (d.arguments !== undefined) card.append(el("pre", "args", pretty(d.arguments)));
    this.lane(e.ns).append(card);
    this.tools.set(d.id, card);
    return card;
  }

  log(e) {
    const row = el("tr");
    row.append(el("td", "", e.seq), el("td", "", e.kind), el("td", "", e.ns.join("/")),
               el("td", "", JSON.stringify(e.data).slice(0, 300)));
    $("#log tbody").append(row);
  }

  render() {
    const badge = $("#status");
    badge.textContent = this.status;
    badge.className = "badge " + this.status.split(" ")[0];
    $("#counts").textContent = this.count + " events";
    $("#log-count").textContent = "(" + this.count + ")";
    const u = this.runUsage || this.usage;
    $("#usage").textContent = u.total_tokens ? `tokens: ${u.prompt_tokens} in · ${u.completion_tokens} out · ${u.total_tokens} total` : "";
    $("#cancel").disabled = !(this.status === "running" || this.status === "connecting");
  }
}

// --- reading a session's SSE stream with fetch --------------------------------------------
async function follow(view, mine) {
  let failures = 0;
  while (mine === generation) {
    let response;
    try {
      response = await fetch(api(`sessions/${encodeURIComponent(view.sid)}/events?after=${view.lastSeq}`),
                             { headers: headers({ Accept: "text/event-stream" }) });
    } catch (err) {
      response = null;
    }
    if (mine !== generation) return;
    if (response && response.status === 204) { view.render(); return; }
    if (response && !response.ok) {
      let message = response.status + "";
      try { message = (await response.json()).error; } catch (e) { /* not JSON */ }
      view.status = "error";
      $("#errors").append(el("div", "error", message));
      view.render();
      return;
    }
    if (response) {
      const done = await readStream(view, response, mine);
      if (done) return;
      failures = 0;
    }
    failures += 1;
    await new Promise((r) => setTimeout(r, Math.min(4000, 250 * 2 ** failures)));
  }
}

async function readStream(view, response, mine) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done || mine !== generation) return mine !== generation;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message", data = [], id = null;
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const i = line.indexOf(":");
          const field = i < 0 ? line : line.slice(0, i);
          const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
          if (field === "data") data.push(val); else if (field === "event") event = val; else if (field === "id") id = val;
        }
        if (!data.length) continue;
        const text = data.join("\n");
        if (text === "[DONE]") { view.render(); return true; }
        if (event === "error" && id === null) {
          const err = JSON.parse(text);
          view.status = err.type === "ProducerGone" ? "gone" : "error";
          $("#errors").append(el("div", "error", err.type + ": " + err.message));
          view.render();
          return true;
        }
        view.apply(JSON.parse(text));
      }
      view.render();
    }
  } catch (err) {
    return mine !== generation;   // dropped: the caller reconnects after the last seq
  }
}

// --- the page --------------------------------------------------------------------------
function open(sid) {
  generation += 1;
  if (location.hash !== "#sid=" + encodeURIComponent(sid)) location.hash = "sid=" + encodeURIComponent(sid);
  view = new SessionView(sid);
  for (const li of document.querySelectorAll("#runs li")) li.classList.toggle("current", li.dataset.sid === sid);
  follow(view, generation);
}

async function refreshRuns() {
  try {
    const [, body] = await getJSON("runs");
    const list = $("#runs");
    list.replaceChildren(...body.runs.map((r) => {
      const li = el("li");
      li.dataset.sid = r.sid;
      if (view && view.sid === r.sid) li.classList.add("current");
      li.append(el("span", "badge " + r.status, r.status), document.createTextNode(" " + r.module),
                el("span", "sid", r.sid));
      li.onclick = () => open(r.sid);
      return li;
    }));
  } catch (e) { /* the next refresh tries again */ }
}

async function boot() {
  try {
    const [, body] = await getJSON("api/modules");
    $("#token").hidden = !body.auth;
    $("#module").replaceChildren(...body.modules.map((m) => {
      const option = el("option", "", m.name);
      option.value = m.name;
      return option;
    }));
    $("#start").disabled = body.modules.length === 0;
  } catch (e) { return; }
  refreshRuns();
}

$("#start-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const raw = $("#input").value;
  let input = raw;
  if (/^\s*[\[{]/.test(raw)) { try { input = JSON.parse(raw); } catch (e) { input = raw; } }
  const r = await fetch(api("runs"), { method: "POST", headers: headers({ "Content-Type": "application/json" }),
                                       body: JSON.stringify({ module: $("#module").value, input }) });
  const body = await r.json();
  if (!r.ok) { $("#errors").append(el("div", "error", body.error)); return; }
  open(body.sid);
  refreshRuns();
};
$("#open-form").onsubmit = (ev) => { ev.preventDefault(); if ($("#sid").value.trim()) open($("#sid").value.trim()); };
$("#refresh").onclick = refreshRuns;
$("#cancel").onclick = async () => {
  if (!view) return;
  $("#cancel").disabled = true;
  const r = await fetch(api(`sessions/${encodeURIComponent(view.sid)}/cancel`), { method: "POST", headers: headers() });
  if (!r.ok && r.status !== 409) $("#errors").append(el("div", "error", (await r.json()).error));
};
setInterval(refreshRuns, 3000);
boot();
const fromHash = new URLSearchParams(location.hash.slice(1)).get("sid");
if (fromHash) open(fromHash);
