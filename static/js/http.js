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
