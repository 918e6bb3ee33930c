// The console's only way to the server: POST /api/v1/{Service}/{Method} with the request
// message's JSON. A 401 asks for a bearer token (kept in localStorage) and retries.
"use strict";

const TOKEN_KEY = "berth.token";

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let tokenWaiters = [];

function askToken() {
  const dialog = document.getElementById("token-dialog");
  dialog.hidden = false;
  document.getElementById("token-input").focus();
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

function initTokenDialog() {
  const dialog = document.getElementById("token-dialog");
  dialog.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = document.getElementById("token-input").value.trim();
    if (!value) return;
    localStorage.setItem(TOKEN_KEY, value);
    dialog.hidden = true;
    const waiters = tokenWaiters;
    tokenWaiters = [];
    waiters.forEach((w) => w());
  });
}

async function api(method, body, { text = false } = {}) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const headers = { "Content-Type": "application/json" };
    const token = localStorage.getItem(TOKEN_KEY);
    if (token) headers["Authorization"] = "Bearer " + token;
    const res = await fetch("/api/v1/" + method, {
      method: "POST",
      headers,
      body: JSON.stringify(body || {}),
    });
    if (res.status === 401) {
      localStorage.removeItem(TOKEN_KEY);
      await askToken();
      continue;
    }
    if (!res.ok) {
      let code = String(res.status), message = res.statusText;
      try {
        const e = await res.json();
        code = e.code || code;
        message = e.message || message;
      } catch (_) { /* not JSON: keep the HTTP status */ }
      throw new ApiError(res.status, code, message);
    }
    return text ? res.text() : res.json();
  }
  throw new ApiError(401, "Unauthenticated", "the token was refused");
}

// ---------------------------------------------------------------- small DOM helpers

// h("td", {class: "x", onclick: f}, "text", child, ...) builds an element; text is never HTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function table(headers, rows) {
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows));
}

function stateSpan(s) {
  return h("span", { class: "state-" + (s || "NONE") }, s || "-");
}

function shortId(arn) {
  return String(arn || "").split("/").pop();
}

function showError(e) {
  const box = document.getElementById("error");
  if (!e) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.textContent = e.code ? `${e.code}: ${e.message}` : String(e.message || e);
  box.hidden = false;
}

// Runs an action from a button: errors go to the banner, success clears it.
async function act(fn) {
  try {
    const r = await fn();
    showError(null);
    return r;
  } catch (e) {
    showError(e);
    return undefined;
  }
}

// A delete button that asks once more before it acts.
function confirmButton(label, className, fn) {
  const b = h("button", { class: "danger " + (className || ""), type: "button" }, label);
  let armed = null;
  b.addEventListener("click", async () => {
    if (!armed) {
      b.textContent = "Confirm " + label.toLowerCase();
      b.classList.add("confirm");
      armed = setTimeout(() => {
        armed = null;
        b.textContent = label;
        b.classList.remove("confirm");
      }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    b.disabled = true;
    await act(fn);
    b.disabled = false;
    b.textContent = label;
    b.classList.remove("confirm");
  });
  return b;
}

function currentCluster() {
  return localStorage.getItem("berth.cluster") || "default";
}

// host:port links to what a task or service publishes, reached from this browser.
function hostLink(host, port, className) {
  const url = `http://${host}:${port}/`;
  return h("a", { href: url, target: "_blank", rel: "noopener", class: className }, `${host}:${port}`);
}
