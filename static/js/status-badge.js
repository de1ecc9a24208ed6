// A generation's status badge (history tiles and the detail page): its word and its colour.

export function setBadge(badge, status) {
  badge.textContent = status;
  badge.className = `badge status-${status}`;
}
