// The console's only script: the live event feed, uploads, confirmations. No library; every
// value is put into the page with textContent, never as HTML.
"use strict";

const token = () => document.querySelector('meta[name="overcast-token"]').content;

function clock(at) {
  return new Date(at * 1000).toLocaleTimeString();
}

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) {
    const span = document.createElement("span");
    span.className = className;
    span.textContent = text;
    td.appendChild(span);
  } else {
    td.textContent = text;
  }
  row.appendChild(td);
  return td;
}

function detail(e) {
  if (e.type === "http") {
    return e.calls.map((c) => `${c.upstream} ${c.operation} ${c.resource} ${c.ms} ms`).join("; ");
  }
  return `id ${e.event_id}, attempt ${e.attempt}` + (e.error ? `: ${e.error}` : "");
}

function eventRow(e) {
  const row = document.createElement("tr");
  row.dataset.id = e.id;
  row.className = e.type;
  cell(row, clock(e.at), null).className = "time";
  cell(row, e.type, null);
  const what = cell(row, e.type === "http" ? e.title : "", null);
  if (e.type !== "http") {
    const link = document.createElement("a");
    link.href = `${document.querySelector('meta[name="overcast-base"]').content}/events/${e.id}`;
    link.textContent = e.title;
    what.appendChild(link);
  }
  cell(row, e.type === "http" ? String(e.status) : e.outcome, "outcome " + e.outcome);
  cell(row, `${e.ms} ms`, null);
  cell(row, detail(e), null);
  return row;
}

function follow(table) {
  const body = table.tBodies[0];
  const state = document.getElementById("feed-state");
  const url = `${table.dataset.stream}?after=${encodeURIComponent(table.dataset.lastId || "0")}`;
  const source = new EventSource(url);
  const add = (message) => {
    const e = JSON.parse(message.data);
    if (body.querySelector(`tr[data-id="${e.id}"]`)) return;
    body.insertBefore(eventRow(e), body.firstChild);
    while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
  };
  for (const type of ["http", "delivery", "schedule"]) source.addEventListener(type, add);
  source.onopen = () => { state.textContent = "live"; state.className = "live"; };
  source.onerror = () => { state.textContent = "reconnecting…"; state.className = "dim"; };
}

function upload(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.querySelector('input[type="file"]').files[0];
    const key = form.querySelector('input[name="key"]').value;
    const status = document.getElementById("upload-status");
    status.textContent = "uploading…";
    const response = await fetch(`${form.dataset.action}?key=${encodeURIComponent(key)}`, {
      method: "PUT",
      body: file,
      headers: { "x-overcast-token": token(), "content-type": file.type || "application/octet-stream" },
      credentials: "same-origin",
    });
    if (response.ok) {
      window.location.reload();
    } else {
      status.textContent = `upload failed: ${response.status}`;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const td of document.querySelectorAll("td.time[data-at]")) td.textContent = clock(Number(td.dataset.at));
  const events = document.getElementById("events");
  if (events) follow(events);
  const form = document.getElementById("upload");
  if (form) upload(form);
  for (const guarded of document.querySelectorAll("form[data-confirm]")) {
    guarded.addEventListener("submit", (event) => {
      if (!window.confirm(guarded.dataset.confirm)) event.preventDefault();
    });
  }
});
