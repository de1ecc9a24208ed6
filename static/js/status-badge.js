// A generation's status badge (history tiles and the detail page): its word and its colour.

export function setBadge(badge, status) {
  badge.textContent = status;
  badge.className = `badge status-${status}`;
}

// A queued job's place, as the status event gives it: "3rd in line, about 40 s".
export function queuedText(message) {
  const place = message.queue_position;
  if (!place) return "Queued";
  const tens = place % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : ["th", "st", "nd", "rd"][place % 10] || "th";
  const eta = message.eta_seconds == null ? "" : `, about ${Math.max(1, Math.round(message.eta_seconds))} s`;
  return `${place}${suffix} in line${eta}`;
}
