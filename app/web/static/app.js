// Event photos: the little the guests' pages need beyond htmx. Live updates (Server-Sent
// Events) and the selfie (downscaled in the browser before upload). The organizer's pages
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
})();
