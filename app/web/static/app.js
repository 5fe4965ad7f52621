// Event photos: the little the pages need beyond htmx. Live updates (Server-Sent Events),
// the selfie (downscaled in the browser before upload) and the organizer's bulk upload
// (progress per file and per batch, resumable). No build step, no dependency.
"use strict";

(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
  const body = document.body;

  // Live updates: one event stream per page; htmx elements listen for "selfie-changed".
  if (body.dataset.live && window.EventSource) {
    let last = null;
    const stream = new EventSource("/api/selfie/events");
    stream.addEventListener("selfie", (event) => {
      if (last !== null && event.data !== last) body.dispatchEvent(new CustomEvent("selfie-changed"));
      last = event.data;
    });
  }

  // The selfie: long side at most 1600 px, as JPEG, so a 12 MP photo crosses a bad Wi-Fi.
  const MAX_SIDE = 1600;
  async function downscale(file) {
    try {
      const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
      const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
      const canvas = document.createElement("canvas");
      canvas.width = Math.round(bitmap.width * scale);
      canvas.height = Math.round(bitmap.height * scale);
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      bitmap.close();
      const blob = await new Promise((done) => canvas.toBlob(done, "image/jpeg", 0.9));
      return blob || file;
    } catch (error) {
      return file; // a format this browser cannot decode (HEIC...): the server reads it
    }
  }

  const selfieForm = document.getElementById("selfie-form");
  if (selfieForm) {
    const input = selfieForm.querySelector('input[type="file"]');
    const verdict = document.getElementById("verdict");
    const send = async (event) => {
      if (event) event.preventDefault();
      const file = input.files && input.files[0];
      if (!file) return;
      verdict.innerHTML = "";
      const note = document.createElement("p");
      note.className = "status busy";
      note.dataset.status = "sending";
      note.textContent = selfieForm.dataset.sending;
      verdict.appendChild(note);
      const data = new FormData();
      data.append("file", await downscale(file), "selfie.jpg");
      try {
        const response = await fetch(selfieForm.dataset.upload, {
          method: "POST", body: data, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin",
        });
        if (response.status === 401) { location.href = "/login?next=/selfie"; return; }
      } catch (error) {
        note.className = "status bad";
        note.dataset.status = "failed";
        note.textContent = selfieForm.dataset.failed;
        return;
      }
      input.value = "";
      htmx.ajax("GET", "/selfie/status", { target: "#verdict" });
    };
    input.addEventListener("change", send);
    selfieForm.addEventListener("submit", send);
  }

  // The organizer's upload: three files at a time, one request each. A file the server
  // accepted is remembered (per event, in this browser), so a retry or a second drop of the
  // same card sends only the rest; a network error retries by itself a few times.
  const zone = document.getElementById("dropzone");
  if (zone) {
    const list = document.getElementById("upload-list");
    const batch = document.getElementById("batch-progress");
    const status = document.getElementById("batch-status");
    const retry = document.getElementById("upload-retry");
    const storeKey = "uploaded:" + zone.dataset.event;
    const messages = JSON.parse(zone.dataset.messages || "{}");
    const sent = new Set(JSON.parse(localStorage.getItem(storeKey) || "[]"));
    const keyOf = (file) => [file.name, file.size, file.lastModified].join(":");
    let items = [];

    const refresh = () => {
      const total = items.reduce((sum, item) => sum + item.file.size, 0) || 1;
      const loaded = items.reduce((sum, item) => sum + item.loaded, 0);
      batch.max = total;
      batch.value = loaded;
      const done = items.filter((item) => item.state === "done" || item.state === "skipped").length;
      status.textContent = done + " / " + items.length;
      retry.hidden = !items.some((item) => item.state === "failed");
      zone.dataset.state = items.every((item) => item.state === "done" || item.state === "skipped" || item.state === "rejected") ? "done" : "busy";
    };

    const row = (item, text) => {
      item.label.textContent = text;
      item.bar.value = item.loaded;
      refresh();
    };

    const upload = (item) => new Promise((resolve) => {
      const request = new XMLHttpRequest();
      request.open("POST", zone.dataset.upload);
      request.setRequestHeader("X-CSRF-Token", csrf());
      request.upload.onprogress = (event) => { item.loaded = Math.min(event.loaded, item.file.size); row(item, ""); };
      request.onload = () => {
        if (request.status === 202) {
          const answer = JSON.parse(request.responseText);
          if (answer.accepted.length) {
            item.state = "done";
            item.loaded = item.file.size;
            sent.add(item.key);
            localStorage.setItem(storeKey, JSON.stringify([...sent]));
            row(item, zone.dataset.done);
          } else {
            item.state = "rejected";
            item.loaded = item.file.size;
            const error = answer.rejected[0].error;
            row(item, messages[error.code] || error.message);
          }
          resolve(true);
        } else {
          resolve(request.status >= 400 && request.status < 500 && request.status !== 429);
          if (request.status >= 400 && request.status < 500 && request.status !== 429) {
            item.state = "rejected";
            row(item, zone.dataset.failed);
          }
        }
      };
      request.onerror = () => resolve(false);
      const data = new FormData();
      data.append("files", item.file, item.file.name);
      request.send(data);
    });

    const work = async (item) => {
      for (let attempt = 0; attempt < 4; attempt++) {
        item.state = "sending";
        if (await upload(item)) return;
        item.loaded = 0;
        row(item, zone.dataset.retrying);
        await new Promise((done) => setTimeout(done, 1000 * 2 ** attempt));
      }
      item.state = "failed";
      row(item, zone.dataset.failed);
    };

    const run = async () => {
      const queue = items.filter((item) => item.state === "waiting");
      const next = async () => {
        while (queue.length) {
          await work(queue.shift());
          document.getElementById("progress").dispatchEvent(new CustomEvent("refresh"));
        }
      };
      await Promise.all([next(), next(), next()]);
      refresh();
    };

    const add = (files) => {
      items = [...files].filter((file) => file.type.startsWith("image/") || /\.(heic|heif)$/i.test(file.name)).map((file) => {
        const li = document.createElement("li");
        const name = document.createElement("span");
        const bar = document.createElement("progress");
        const label = document.createElement("em");
        name.textContent = file.name;
        bar.max = file.size;
        bar.value = 0;
        bar.setAttribute("aria-label", file.name);
        li.append(name, bar, label);
        list.appendChild(li);
        const key = keyOf(file);
        const skipped = sent.has(key);
        const item = { file, key, li, bar, label, loaded: skipped ? file.size : 0, state: skipped ? "skipped" : "waiting" };
        label.textContent = skipped ? zone.dataset.skipped : zone.dataset.waiting;
        bar.value = item.loaded;
        return item;
      });
      list.replaceChildren(...items.map((item) => item.li));
      refresh();
      run();
    };

    const input = document.getElementById("photo-files");
    input.addEventListener("change", () => { add(input.files); input.value = ""; });
    retry.addEventListener("click", () => {
      items.filter((item) => item.state === "failed").forEach((item) => { item.state = "waiting"; item.loaded = 0; });
      run();
    });
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      add(event.dataTransfer.files);
    });
  }
})();
