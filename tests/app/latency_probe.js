// Armed before a key press: window.__lat becomes the ms from the key press to the moment every watched part
// has new content. ``live``: look inside the live area's shadow root, else in the document (a plain Streamlit page).
([live, watched]) => {
  const host = live ? [...document.querySelector('.st-key-delta_live').querySelectorAll('*')].find(e => e.shadowRoot) : null;
  const root = host ? host.shadowRoot : document;
  const read = (sel) => { const el = root.querySelector(sel); return el ? el.innerHTML : ''; };  // a moved line counts
  const before = watched.map(read);
  window.__t0 = null; window.__lat = null;
  document.addEventListener('keydown', () => { window.__t0 = performance.now(); }, {once: true, capture: true});
  const check = () => {
    if (window.__t0 === null || window.__lat !== null) return;
    if (watched.some((sel, i) => read(sel) === '' || read(sel) === before[i])) return;
    window.__lat = performance.now() - window.__t0;
    obs.disconnect();
  };
  const obs = new MutationObserver(check);
  obs.observe(root === document ? document.body : root, {subtree: true, childList: true, characterData: true, attributes: true});
}
