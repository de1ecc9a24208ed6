// Small helpers for the session-authenticated API (CSRF header on writes).

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

// The studio page's token (its jobs go in the studio lane; a script's with a session do not).
function studioHeaders() {
  const token = document.getElementById("studio")?.dataset.studioToken;
  return token ? { "X-DreamLayer-Studio": token } : {};
}

export async function postForm(url, formData) {
  const response = await fetch(url, {
    method: "POST",
    body: formData,
    headers: { "X-CSRFToken": csrfToken(), ...studioHeaders() },
    credentials: "same-origin",
  });
  return response;
}

// The same POST with its upload's progress (fetch reports none): ``onProgress(sent, total)``
// as the body goes out (total null where unknown), ``onSent()`` once it is all sent; an
// ``AbortSignal`` stops it (the promise then rejects with an AbortError). Resolves with a
// Response, as fetch does.
export function postFormWithProgress(url, formData, { onProgress, onSent, signal } = {}) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", url);
    for (const [name, value] of Object.entries({ "X-CSRFToken": csrfToken(), ...studioHeaders() })) {
      request.setRequestHeader(name, value);
    }
    request.upload.addEventListener("progress", (event) => {
      onProgress?.(event.loaded, event.lengthComputable ? event.total : null);
    });
    request.upload.addEventListener("load", () => onSent?.());
    request.addEventListener("load", () => {
      const empty = [204, 205, 304].includes(request.status);
      const type = request.getResponseHeader("Content-Type") || "text/plain";
      resolve(new Response(empty ? null : request.responseText,
        { status: request.status, headers: { "Content-Type": type } }));
    });
    request.addEventListener("error", () => reject(new TypeError("the connection failed")));
    request.addEventListener("abort", () => reject(new DOMException("The upload was stopped.", "AbortError")));
    signal?.addEventListener("abort", () => request.abort(), { once: true });
    request.send(formData);
  });
}

export async function postJson(url) {
  return fetch(url, {
    method: "POST",
    headers: { "X-CSRFToken": csrfToken() },
    credentials: "same-origin",
  });
}

export function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

// How long to wait before a closed socket is opened again: `usual` milliseconds, but longer
// when the server closed it because the user has too many sockets open (4429, other tabs) or
// it could not subscribe it (1013, try again later).
export function reconnectDelay(event, usual) {
  return event.code === 4429 || event.code === 1013 ? 15000 : usual;
}

// The thumbnail of an output (…/images/<n>.png: …/thumbnails/<n>.webp, at most 640 px), for
// the small pictures of a page; the picture itself stays behind its link.
export function thumbnailUrl(outputUrl) {
  return outputUrl.replace(/\/images\/(\d+)\.png$/, "/thumbnails/$1.webp");
}
