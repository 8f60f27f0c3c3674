#!/usr/bin/env node
/**
 * Writes the sample documents of the tour (README.md, docs/getting-started.md) into this folder:
 * invoice.pdf (one page), invoice.xml (a UBL 2.1 invoice, UTF-8) and big.pdf (many pages, a few
 * hundred KB). Plain Node, no dependencies, and deterministic (no dates, no random ids): running it
 * again writes the same bytes, which test/unit/examples/generate.test.ts checks.
 *
 *   node examples/generate.mjs
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';

/** A PDF 1.7 file with an xref table: pages of Helvetica text lines, uncompressed. */
export const makePdf = (title, pages) => {
  const objects = [];
  const add = (body) => objects.push(body) && objects.length;
  const catalog = add('');
  const pagesObj = add('');
  const font = add('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>');
  const info = add(`<< /Title (${title}) /Producer (signspool examples/generate.mjs) >>`);
  const kids = [];
  for (const lines of pages) {
    const text = lines.map((l, i) => `BT /F1 ${i === 0 ? 16 : 10} Tf 56 ${770 - i * 14} Td (${l.replace(/[()\\]/g, '\\$&')}) Tj ET`).join('\n');
    const content = add(`<< /Length ${Buffer.byteLength(text, 'latin1')} >>\nstream\n${text}\nendstream`);
    kids.push(add(`<< /Type /Page /Parent ${pagesObj} 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 ${font} 0 R >> >> /Contents ${content} 0 R >>`));
  }
  objects[catalog - 1] = `<< /Type /Catalog /Pages ${pagesObj} 0 R >>`;
  objects[pagesObj - 1] = `<< /Type /Pages /Kids [${kids.map((k) => `${k} 0 R`).join(' ')}] /Count ${kids.length} >>`;
  let out = '%PDF-1.7\n%\xe2\xe3\xcf\xd3\n';
  const offsets = [];
  objects.forEach((body, i) => {
    offsets.push(Buffer.byteLength(out, 'latin1'));
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = Buffer.byteLength(out, 'latin1');
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root ${catalog} 0 R /Info ${info} 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
};

const invoiceLines = [
  'Invoice INV-2026-0042',
  'Seller: Example Supplies Lda, Rua do Exemplo 1, 1000-001 Lisboa, PT500000000',
  'Buyer: Example Customer SA, Avenida da Amostra 2, 4000-002 Porto, PT510000000',
  'Issue date: 2026-12-01        Due date: 2026-12-31',
  '',
  '1  Paper, A4, 500 sheets        10 x 4.50 EUR      45.00 EUR',
  '2  Toner cartridge, black        2 x 62.00 EUR    124.00 EUR',
  '',
  'Net 169.00 EUR    VAT 23% 38.87 EUR    Total 207.87 EUR',
];

/** A long report: 60 pages of numbered lines (about 370 KB). */
const reportPages = Array.from({ length: 60 }, (_, p) => [
  `Archive report, page ${p + 1} of 60`,
  ...Array.from(
    { length: 50 },
    (_, l) => `${String(p * 50 + l + 1).padStart(5, '0')}  document archived under retention class B; checksum recorded; no action needed`,
  ),
]);

export const invoiceXml = `<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
         xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
         xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:UBLVersionID>2.1</cbc:UBLVersionID>
  <cbc:ID>INV-2026-0042</cbc:ID>
  <cbc:IssueDate>2026-12-01</cbc:IssueDate>
  <cbc:DueDate>2026-12-31</cbc:DueDate>
  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cac:AccountingSupplierParty>
    <cac:Party>
      <cac:PartyName><cbc:Name>Example Supplies Lda</cbc:Name></cac:PartyName>
      <cac:PartyTaxScheme><cbc:CompanyID>PT500000000</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
    </cac:Party>
  </cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty>
    <cac:Party>
      <cac:PartyName><cbc:Name>Example Customer SA</cbc:Name></cac:PartyName>
      <cac:PartyTaxScheme><cbc:CompanyID>PT510000000</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
    </cac:Party>
  </cac:AccountingCustomerParty>
  <cac:TaxTotal>
    <cbc:TaxAmount currencyID="EUR">38.87</cbc:TaxAmount>
  </cac:TaxTotal>
  <cac:LegalMonetaryTotal>
    <cbc:LineExtensionAmount currencyID="EUR">169.00</cbc:LineExtensionAmount>
    <cbc:TaxExclusiveAmount currencyID="EUR">169.00</cbc:TaxExclusiveAmount>
    <cbc:TaxInclusiveAmount currencyID="EUR">207.87</cbc:TaxInclusiveAmount>
    <cbc:PayableAmount currencyID="EUR">207.87</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
  <cac:InvoiceLine>
    <cbc:ID>1</cbc:ID>
    <cbc:InvoicedQuantity unitCode="EA">10</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="EUR">45.00</cbc:LineExtensionAmount>
    <cac:Item><cbc:Name>Paper, A4, 500 sheets</cbc:Name></cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="EUR">4.50</cbc:PriceAmount></cac:Price>
  </cac:InvoiceLine>
  <cac:InvoiceLine>
    <cbc:ID>2</cbc:ID>
    <cbc:InvoicedQuantity unitCode="EA">2</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="EUR">124.00</cbc:LineExtensionAmount>
    <cac:Item><cbc:Name>Toner cartridge, black</cbc:Name></cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="EUR">62.00</cbc:PriceAmount></cac:Price>
  </cac:InvoiceLine>
</Invoice>
`;

/** Every sample: its file name and bytes. */
export const examples = () => [
  { name: 'invoice.pdf', bytes: makePdf('Invoice INV-2026-0042', [invoiceLines]) },
  { name: 'invoice.xml', bytes: Buffer.from(invoiceXml, 'utf8') },
  { name: 'big.pdf', bytes: makePdf('Archive report', reportPages) },
];

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const { name, bytes } of examples()) {
    writeFileSync(path.join(import.meta.dirname, name), bytes);
    process.stdout.write(`wrote examples/${name} (${bytes.length} bytes)\n`);
  }
}
