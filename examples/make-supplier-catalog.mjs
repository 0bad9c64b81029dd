#!/usr/bin/env node
// Writes examples/supplier-catalog.csv: 10,000 deterministic supplier rows, a few percent of
// them dirty the way real supplier files are. Run: node examples/make-supplier-catalog.mjs
import { writeFileSync } from 'node:fs';

let seed = 20261121;
const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const pick = (list) => list[Math.floor(random() * list.length)];

const adjectives = ['Heavy-duty', 'Compact', 'Stainless', 'Ergonomic', 'Cordless', 'Galvanised', 'Premium', 'Budget'];
const nouns = [
  'drill',
  'hammer',
  'wrench set',
  'saw',
  'screwdriver',
  'tape measure',
  'ladder',
  'toolbox',
  'clamp',
  'sander',
];
const categories = ['Power Tools', 'Hand Tools', 'Storage', 'Measuring', 'Safety', 'Fasteners'];
const quote = (s) => (/[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);

const lines = ['Item Code,Item Name,Description,Unit Price,Qty On Hand,Category,Last Updated'];
const skus = [];
for (let i = 1; i <= 10000; i++) {
  let sku = `SUP-${String(100000 + i)}`;
  let name = `${pick(adjectives)} ${pick(nouns)}`;
  let description = `${name}, ${Math.floor(random() * 50) + 1} pieces`;
  let price = (random() * 400 + 1).toFixed(2);
  let stock = String(Math.floor(random() * 500));
  const category = pick(categories);
  const day = String(1 + Math.floor(random() * 28)).padStart(2, '0');
  let updated = `2026-10-${day} 08:${String(Math.floor(random() * 60)).padStart(2, '0')}:00+00`;
  if (random() < 0.3) price = price.replace('.', ','); // European decimal comma: the mapping fixes it
  if (random() < 0.05) description = `${description}\nSecond line of the description`;
  if (random() < 0.1) description = `${description} (12" blade)`;

  const roll = random();
  if (roll < 0.01)
    price = pick(['12,5O', 'n/a', 'abc', '']); // bad prices
  else if (roll < 0.015)
    price = `-${price}`; // negative: a check
  else if (roll < 0.022)
    sku = ''; // missing SKU
  else if (roll < 0.03 && skus.length > 0)
    sku = pick(skus); // duplicate SKU
  else if (roll < 0.033)
    stock = 'lots'; // not an integer
  else if (roll < 0.035) updated = '2026-13-45'; // not a date
  skus.push(sku);

  const fields = [sku, name, description, price, stock, category, updated].map(quote);
  if (i === 4321) fields.push('EXTRA'); // too many columns
  let line = fields.join(',');
  if (i === 7777) line = `${sku},"${name} ${description.replace('\n', ' ')},${price},${stock},${category},${updated}`; // broken quote
  lines.push(line);
}
writeFileSync(new URL('./supplier-catalog.csv', import.meta.url), `${lines.join('\n')}\n`);
