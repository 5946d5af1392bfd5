// Building SVG from data through the SVG DOM (lengths and points, never attributes from
// strings), so the rules the console keeps for HTML hold for its charts too.

export const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, cls) {
  const e = document.createElementNS(SVG, tag);
  if (cls) e.classList.add(cls);
  return e;
}

/** A root <svg> of `w` × `h` user units. */
export function root(w, h, cls) {
  const r = svg("svg", cls);
  // An <svg>'s width and height default to 100%: give them user units, not a value.
  r.width.baseVal.newValueSpecifiedUnits(SVGLength.SVG_LENGTHTYPE_NUMBER, w);
  r.height.baseVal.newValueSpecifiedUnits(SVGLength.SVG_LENGTHTYPE_NUMBER, h);
  return r;
}

export function line(x1, y1, x2, y2, cls) {
  const l = svg("line", cls);
  l.x1.baseVal.value = x1;
  l.y1.baseVal.value = y1;
  l.x2.baseVal.value = x2;
  l.y2.baseVal.value = y2;
  return l;
}

export function rect(x, y, w, h, cls) {
  const r = svg("rect", cls);
  r.x.baseVal.value = x;
  r.y.baseVal.value = y;
  r.width.baseVal.value = Math.max(0, w);
  r.height.baseVal.value = h;
  return r;
}

function length(v) {
  const l = document.createElementNS(SVG, "svg").createSVGLength();
  l.value = v;
  return l;
}

export function text(x, y, s, cls) {
  const e = svg("text", cls);
  e.textContent = s;
  e.x.baseVal.appendItem(length(x));
  e.y.baseVal.appendItem(length(y));
  return e;
}
