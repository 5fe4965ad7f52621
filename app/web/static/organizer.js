// Event photos, the organizer's dashboard: the bulk upload (progress per file and per
// batch, resumable). Loaded after app.js on the organizer's pages only. No build step.
"use strict";

(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  // The organizer's upload, built for a memory card of 25,000 photos: four files at a time,
  // counters instead of a row per file (rows only for the first files and the problems), and
  // the progress drawn at most once per frame. With a bucket (data-sign), each file is hashed
  // in the browser (SHA-256), signed in small batches (the server answers "duplicate" for the
  // bytes it has, from any browser), sent straight to the bucket, then completed: no byte of
  // it crosses the web node. Otherwise one multipart request per file, as before. A file done
  // is also remembered in this browser (per event), and a failed one retried a few times.
  const zone = document.getElementById("dropzone");
  if (zone) {
    const list = document.getElementById("upload-list");
    const batch = document.getElementById("batch-progress");
    const status = document.getElementById("batch-status");
    const unit = document.getElementById("batch-unit");
    const bytes = document.getElementById("batch-bytes");
    const eta = document.getElementById("batch-eta");
    const over = document.getElementById("batch-done");
    const notImages = document.getElementById("batch-skipped");
    const retry = document.getElementById("upload-retry");
    const storeKey = "uploaded:" + zone.dataset.event;
    const messages = JSON.parse(zone.dataset.messages || "{}");
    const sent = new Set(JSON.parse(localStorage.getItem(storeKey) || "[]"));
    const keyOf = (file) => [file.name, file.size, file.lastModified].join(":");
    let direct = Boolean(zone.dataset.sign && window.crypto && crypto.subtle);
    const WORKERS = 4;
    const SIGN_SLICE = 8;
    const ROWS = 100; // rows drawn: the files being sent, up to ROWS problems and the ROWS last done
    const MB = 1024 * 1024;
    const lang = document.documentElement.lang || undefined;
    const plural = new Intl.PluralRules(lang);
    // A text of the page in the right plural form, "%(num)s" (and "%(names)s") filled in.
    const say = (name, num, names) => {
      const form = plural.select(num) === "one" ? "One" : "Other";
      return (zone.dataset[name + form] || "").replace("%(num)s", num.toLocaleString(lang)).replace("%(names)s", names || "");
    };
    const unitOf = (value, name) => new Intl.NumberFormat(lang, { style: "unit", unit: name, unitDisplay: "short" }).format(value);
    const duration = (seconds) => {
      if (seconds < 60) return unitOf(Math.max(5, Math.ceil(seconds / 5) * 5), "second");
      if (seconds < 3600) return unitOf(Math.ceil(seconds / 60), "minute");
      return unitOf(Math.floor(seconds / 3600), "hour") + " " + unitOf(Math.ceil((seconds % 3600) / 60), "minute");
    };
    let items = [];
    let counts = { done: 0, total: 0, loaded: 0, bytes: 0, moved: 0, ok: 0, started: 0 };
    let active = new Set(); // being sent, or waiting to be sent again
    let problems = []; // refused or failed, in order
    let recent = []; // done, newest first (ROWS at most)
    let drawn = false;
    let saveTimer = null;

    const remember = (item) => {
      sent.add(item.key);
      if (!saveTimer) saveTimer = setTimeout(() => { saveTimer = null; localStorage.setItem(storeKey, JSON.stringify([...sent])); }, 1000);
    };
    const finished = (state) => state === "done" || state === "skipped" || state === "rejected";

    const rowOf = (item) => {
      if (!item.li) {
        const li = document.createElement("li");
        const name = document.createElement("span");
        item.bar = document.createElement("progress");
        item.label = document.createElement("em");
        name.textContent = item.file.name;
        item.bar.max = item.file.size;
        item.bar.setAttribute("aria-label", item.file.name);
        li.append(name, item.bar, item.label);
        item.li = li;
      }
      item.label.textContent = item.text || "";
      item.bar.value = item.loaded;
      item.li.dataset.state = item.state;
      return item.li;
    };

    // The list shows what needs an eye: problems first, then the files on their way, then the
    // last ones done. Rows of files no longer shown are dropped.
    let shown = [];
    const drawRows = () => {
      const wanted = [...problems.slice(0, ROWS), ...active, ...recent];
      const keep = new Set(wanted);
      for (const item of shown) if (!keep.has(item)) item.li = null;
      list.replaceChildren(...wanted.map(rowOf));
      shown = wanted;
    };

    const draw = () => {
      drawn = false;
      batch.max = counts.bytes || 1;
      batch.value = Math.min(counts.loaded, counts.bytes);
      status.textContent = counts.done + " / " + counts.total;
      unit.textContent = say("unit", counts.total);
      bytes.textContent = (counts.loaded / MB).toFixed(1) + " / " + (counts.bytes / MB).toFixed(1) + " MB";
      const failed = problems.filter((item) => item.state === "failed").length;
      retry.hidden = failed === 0;
      zone.dataset.state = counts.done === counts.total ? "done" : "busy";
      const seconds = (performance.now() - counts.started) / 1000;
      const rate = counts.moved / Math.max(seconds, 0.001);
      eta.textContent = running && seconds > 2 && rate > 0
        ? zone.dataset.eta.replace("%(time)s", duration((counts.bytes - counts.loaded) / rate)) : "";
      over.textContent = running || !counts.total ? ""
        : [say("finished", counts.ok), problems.length ? say("problems", problems.length) : ""].join(" ").trim();
      drawRows();
    };
    const refresh = () => { if (!drawn) { drawn = true; requestAnimationFrame(draw); } };

    const show = (item, text) => {
      item.text = text;
      if (item.state === "sending") active.add(item);
      refresh();
    };
    const progress = (item, loaded) => {
      counts.loaded += loaded - item.loaded;
      item.loaded = loaded;
      refresh();
    };
    const moved = (item, loaded) => { // bytes that went over the network: the pace of the upload
      counts.moved += Math.max(0, loaded - item.loaded);
      progress(item, loaded);
    };
    const settle = (item, state, text) => {
      if (!finished(item.state) && finished(state)) counts.done++;
      item.state = state;
      active.delete(item);
      progress(item, item.file.size);
      if (state === "done" || state === "skipped") {
        remember(item);
        counts.ok++;
        recent.unshift(item);
        if (recent.length > ROWS) recent.length = ROWS;
      } else {
        problems.push(item);
      }
      show(item, text);
    };

    // One request as a promise: {status, body, etag} (status 0: the network failed).
    const send = (method, url, body, headers, onprogress) => new Promise((resolve) => {
      const request = new XMLHttpRequest();
      request.open(method, url);
      for (const [name, value] of Object.entries(headers || {})) request.setRequestHeader(name, value);
      if (onprogress) request.upload.onprogress = (event) => onprogress(event.loaded);
      request.onload = () => resolve({ status: request.status, body: request.responseText, etag: request.getResponseHeader("ETag") });
      request.onerror = () => resolve({ status: 0 });
      request.send(body);
    });
    const api = (url, data) => send("POST", url, JSON.stringify(data), { "Content-Type": "application/json", "X-CSRF-Token": csrf() });
    const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
    const failedFor = (response) => response.status >= 400 && response.status < 500 && response.status !== 429 && response.status !== 408;

    // Through the node: true when settled (sent, duplicate, refused), false to try again.
    const viaForm = async (item) => {
      const data = new FormData();
      data.append("files", item.file, item.file.name);
      const response = await send("POST", zone.dataset.upload, data, { "X-CSRF-Token": csrf() },
        (loaded) => moved(item, Math.min(loaded, item.file.size)));
      if (response.status === 202) {
        const answer = JSON.parse(response.body);
        if (answer.accepted.length) settle(item, "done", answer.accepted[0].duplicate ? zone.dataset.duplicate : zone.dataset.done);
        else settle(item, "rejected", messages[answer.rejected[0].error.code] || answer.rejected[0].error.message);
        return true;
      }
      if (failedFor(response)) { settle(item, "rejected", zone.dataset.failed); return true; }
      return false;
    };

    // Straight to the bucket, once signed: the PUT (or the parts), then "complete".
    const viaBucket = async (item, slot) => {
      let upload = {};
      if (slot.url) {
        const put = await send("PUT", slot.url, item.file, slot.headers, (loaded) => moved(item, Math.min(loaded, item.file.size)));
        if (put.status !== 200) return false;
      } else {
        const parts = [];
        for (const part of slot.parts) {
          const start = (part.number - 1) * slot.part_bytes;
          const base = start;
          const put = await send("PUT", part.url, item.file.slice(start, start + slot.part_bytes), {},
            (loaded) => moved(item, Math.min(base + loaded, item.file.size)));
          if (put.status !== 200 || !put.etag) return false;
          parts.push({ number: part.number, etag: put.etag });
        }
        upload = { upload_id: slot.upload_id, parts };
      }
      const done = await api(zone.dataset.sign + "/" + slot.photo_id + "/complete", upload);
      if (done.status === 200) { settle(item, "done", zone.dataset.done); return true; }
      return false;
    };

    const signed = async (slice) => {
      for (const item of slice) {
        if (!item.sha256) item.sha256 = hex(await crypto.subtle.digest("SHA-256", await item.file.arrayBuffer()));
      }
      const response = await api(zone.dataset.sign, { files: slice.map((item) => ({
        name: item.file.name, size: item.file.size, content_type: item.file.type || "image/heic", sha256: item.sha256,
      })) });
      if (response.status === 409) { direct = false; return null; } // no bucket after all: the form
      return response.status === 200 ? JSON.parse(response.body).files : [];
    };

    const work = async (slice) => {
      for (let attempt = 0; attempt < 4 && slice.length; attempt++) {
        slice.forEach((item) => { item.state = "sending"; show(item, zone.dataset.sending); });
        if (direct) {
          let slots = null;
          try { slots = await signed(slice); } catch (error) { slots = []; }
          if (slots !== null) {
            const again = [];
            for (const [i, item] of slice.entries()) {
              const slot = slots[i];
              if (!slot) again.push(item);
              else if (slot.status === "duplicate") settle(item, "skipped", zone.dataset.duplicate);
              else if (slot.status === "rejected") settle(item, "rejected", messages[slot.error.code] || slot.error.message);
              else if (!(await viaBucket(item, slot))) again.push(item);
            }
            slice = again;
          }
        }
        if (!direct) {
          const again = [];
          for (const item of slice) if (!(await viaForm(item))) again.push(item);
          slice = again;
        }
        for (const item of slice) { progress(item, 0); show(item, zone.dataset.retrying); }
        if (slice.length) await new Promise((done) => setTimeout(done, 1000 * 2 ** attempt));
      }
      slice.forEach((item) => { item.state = "failed"; active.delete(item); problems.push(item); show(item, zone.dataset.failed); });
    };

    let running = false;
    const run = async () => {
      if (running) return;
      running = true;
      const queue = items.filter((item) => item.state === "waiting");
      const next = async () => {
        while (queue.length) {
          await work(queue.splice(0, direct ? SIGN_SLICE : 1));
          document.getElementById("progress").dispatchEvent(new CustomEvent("refresh"));
        }
      };
      await Promise.all(Array.from({ length: WORKERS }, next));
      running = false;
      document.getElementById("progress").dispatchEvent(new CustomEvent("refresh"));
      if (items.some((item) => item.state === "waiting")) run(); // files dropped meanwhile
      refresh();
    };

    const isImage = (file) => file.type.startsWith("image/") || /\.(heic|heif)$/i.test(file.name);
    const add = (files) => {
      const chosen = [...files].filter(isImage);
      const others = [...files].filter((file) => !isImage(file)).map((file) => file.name);
      notImages.hidden = others.length === 0;
      notImages.textContent = others.length
        ? say("notImages", others.length, others.slice(0, 5).join(", ") + (others.length > 5 ? ", …" : "")) : "";
      if (!chosen.length) return;
      if (items.every((item) => finished(item.state))) { // a new batch: the last one is over
        items = [];
        counts = { done: 0, total: 0, loaded: 0, bytes: 0, moved: 0, ok: 0, started: performance.now() };
        active = new Set();
        problems = [];
        recent = [];
      }
      const base = items.length;
      const fresh = chosen.map((file, i) => {
        const key = keyOf(file);
        return { file, key, index: base + i, loaded: 0, state: "waiting" };
      });
      items = items.concat(fresh);
      counts.total += fresh.length;
      counts.bytes += fresh.reduce((sum, item) => sum + item.file.size, 0);
      for (const item of fresh) if (sent.has(item.key)) settle(item, "skipped", zone.dataset.skipped);
      refresh();
      run();
    };

    // Leaving the page stops the upload: the browser asks first.
    window.addEventListener("beforeunload", (event) => {
      if (running) { event.preventDefault(); event.returnValue = zone.dataset.leave; }
    });

    const input = document.getElementById("photo-files");
    input.addEventListener("change", () => { add(input.files); input.value = ""; });
    retry.addEventListener("click", () => {
      items.filter((item) => item.state === "failed").forEach((item) => { item.state = "waiting"; });
      problems = problems.filter((item) => item.state !== "waiting");
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

  // The card to print: its button prints (hidden without script, where the browser's menu does).
  const print = document.querySelector("[data-print]");
  if (print) {
    print.hidden = false;
    print.addEventListener("click", () => window.print());
  }
})();
