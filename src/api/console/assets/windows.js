// The windows the console offers (today, this month, this quarter, this year), each from its
// first midnight in the browser's time zone to now.

/** The start of `preset`'s window containing `now`. */
export function startOf(preset, now) {
  const y = now.getFullYear();
  const m = now.getMonth();
  if (preset === "today") return new Date(y, m, now.getDate());
  if (preset === "month") return new Date(y, m, 1);
  if (preset === "quarter") return new Date(y, m - (m % 3), 1);
  return new Date(y, 0, 1);
}
