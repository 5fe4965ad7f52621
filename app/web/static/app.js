// Event photos: the little the guests' pages need beyond htmx. Live updates (Server-Sent
// Events), the selfie (downscaled in the browser before upload), the password's length while
// it is typed, and a photo's swipe and share. The organizer's pages
// add organizer.js. No build step, no dependency.
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

  // Registration: the password's length, as it is typed (the server judges its strength).
  const password = document.querySelector("input[data-meter]");
  if (password) {
    const meter = document.getElementById(password.dataset.meter);
    let timer = null;
    password.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        const length = [...password.value].length;
        const words = length >= Number(password.dataset.min) ? password.dataset.long : password.dataset.short;
        meter.textContent = length ? words.replace("{n}", String(length)) : "";
      }, 300);
    });
  }

  // One photo, full size: swipe to the previous or next one; share the file itself where the
  // phone can (Web Share level 2), else the download link stays the way.
  const photo = document.getElementById("photo");
  if (photo) {
    let start = null;
    photo.addEventListener("touchstart", (event) => {
      start = event.touches.length === 1 ? { x: event.touches[0].clientX, y: event.touches[0].clientY } : null;
    }, { passive: true });
    photo.addEventListener("touchend", (event) => {
      if (!start || event.changedTouches.length !== 1) return;
      const dx = event.changedTouches[0].clientX - start.x;
      const dy = event.changedTouches[0].clientY - start.y;
      start = null;
      if (Math.abs(dx) < 50 || Math.abs(dx) < 1.5 * Math.abs(dy)) return;
      const link = document.querySelector(dx < 0 ? 'a[rel="next"]' : 'a[rel="prev"]');
      if (link) location.href = link.href;
    });
  }
  const share = document.getElementById("share");
  const probe = () => new File([new Uint8Array(1)], "photo.jpg", { type: "image/jpeg" });
  if (share && navigator.canShare && navigator.share && navigator.canShare({ files: [probe()] })) {
    share.hidden = false;
    share.addEventListener("click", async () => {
      let file = null;
      try {
        const response = await fetch(share.dataset.file, { credentials: "same-origin" });
        if (!response.ok) throw new Error(String(response.status));
        const blob = await response.blob();
        file = new File([blob], share.dataset.name, { type: blob.type || "image/jpeg" });
      } catch (error) {
        file = null;
      }
      if (file && navigator.canShare({ files: [file] })) {
        try {
          await navigator.share({ files: [file] });
        } catch (error) {
          // AbortError: the guest closed the share sheet; nothing to do.
        }
      } else {
        document.getElementById("download").click();
      }
    });
  }
})();
