"""Inline CSS and JavaScript of the results page, so the page is one file that opens from disk."""

PAGE_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1d232a; background: #fff; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; }
h2 { font-size: 1.1rem; margin: 1.2rem 0 .4rem; }
.muted { color: #5b6570; }
div.metrics { display: grid; grid-template-columns: repeat(auto-fill, minmax(26rem, 1fr)); gap: .15rem 1rem;
  font-size: .85rem; font-variant-numeric: tabular-nums; }
div.metric { white-space: nowrap; }
div.metric .name { display: inline-block; min-width: 12.5rem; font-weight: 600; }
pre.config { background: #f6f8fa; padding: .6rem; max-height: 24rem; overflow: auto; font-size: .8rem; }
.notes { background: #fff8e1; border: 1px solid #f0d98c; padding: .4rem .8rem; font-size: .85rem; }
.controls { margin: .8rem 0; }
table#studies { border-collapse: collapse; width: 100%; table-layout: fixed; }
table#studies th { position: sticky; top: 0; background: #e9ecef; text-align: left; padding: .35rem; }
table#studies th[data-sort] { cursor: pointer; text-decoration: underline dotted; }
table#studies td { border-top: 1px solid #d4d9de; padding: .4rem; vertical-align: top; font-size: .88rem; }
col.id { width: 9rem; } col.images { width: 12rem; } col.score { width: 5rem; } col.labels { width: 14rem; }
td.report { line-height: 1.45; overflow-wrap: anywhere; }
img.thumb { max-width: 11rem; max-height: 11rem; display: block; margin-bottom: .3rem; border: 1px solid #ccc; }
mark.missing { background: #ffd7d5; }
mark.added { background: #cdeccf; }
.empty { color: #8a939c; font-style: italic; }
.label { display: inline-block; border-radius: .6rem; padding: 0 .45rem; margin: 0 .2rem .2rem 0; font-size: .75rem; }
.label.agree { background: #cdeccf; }
.label.missed { background: #ffd7d5; }
.label.extra { background: #ffe8b3; }
"""

# Sorting uses the data-* attributes of each row. The hash "#sort=<key>-<asc|desc>" selects the
# order on load, and after the load event the body gets data-images-loaded / data-images-total,
# which a headless browser test reads from the DOM.
PAGE_JS = """
(function () {
  const body = document.querySelector('#studies tbody');
  const select = document.getElementById('sort');
  const attributes = {index: 'index', bleu4: 'bleu4', ce: 'ceF1'};
  function value(row, key) {
    const text = row.dataset[key];
    return text === undefined || text === '' ? -Infinity : Number(text);
  }
  function sortRows(mode) {
    const [key, order] = mode.split('-');
    const attribute = attributes[key];
    if (!attribute || (order !== 'asc' && order !== 'desc')) return;
    const rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      const difference = value(a, attribute) - value(b, attribute);
      const signed = order === 'desc' ? -difference : difference;
      return (Number.isNaN(signed) ? 0 : signed) || value(a, 'index') - value(b, 'index');
    });
    rows.forEach(function (row) { body.appendChild(row); });
    select.value = mode;
    document.body.dataset.sort = mode;
  }
  select.addEventListener('change', function () {
    sortRows(select.value);
    try { history.replaceState(null, '', '#sort=' + select.value); } catch (error) { /* file URL limits */ }
  });
  document.querySelectorAll('th[data-sort]').forEach(function (header) {
    header.addEventListener('click', function () {
      const key = header.dataset.sort;
      select.value = select.value === key + '-desc' ? key + '-asc' : key + '-desc';
      select.dispatchEvent(new Event('change'));
    });
  });
  const match = location.hash.match(/^#sort=([a-z0-9]+-(?:asc|desc))$/);
  sortRows(match ? match[1] : 'index-asc');
  window.addEventListener('load', function () {
    const images = Array.from(document.images);
    document.body.dataset.imagesTotal = String(images.length);
    document.body.dataset.imagesLoaded = String(images.filter(function (image) {
      return image.complete && image.naturalWidth > 0;
    }).length);
    document.body.dataset.ready = 'true';
  });
})();
"""
