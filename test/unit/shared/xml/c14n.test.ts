/**
 * The XML byte scanner: its well-formedness verdict agrees with saxes (the streaming parser it
 * replaces at submit; verdicts taken from it) on good and broken documents, and its canonical form is Canonical XML 1.0
 * without comments (expected forms checked against xmldsigjs's canonicalizer, and against the
 * spec where that one differs: xmlns="" under an element without a default namespace is dropped).
 */
import { describe, expect, it } from 'vitest';
import { scanXml } from '@signspool/shared/xml/c14n';

const canonical = (xml: string | Buffer): string => {
  const parts: Buffer[] = [];
  const r = scanXml(Buffer.isBuffer(xml) ? xml : Buffer.from(xml), { update: (d) => parts.push(Buffer.isBuffer(d) ? d : Buffer.from(d)) });
  if (r.kind !== 'ok') throw new Error(`${r.kind}: ${r.reason}`);
  return Buffer.concat(parts).toString('utf8');
};

describe('scanXml', () => {
  const good = [
    '<a/>',
    '<?xml version="1.0" encoding="UTF-8"?>\n<!-- c -->\n<?pi data?>\n<a b="1"><c/>text &amp; &lt; &#233;<![CDATA[x<y]]></a>\n<!-- after -->',
    '<r xmlns="urn:x" xmlns:p="urn:p"><p:e p:z="1" a="2" xmlns:q="urn:q" q:a="3"><f xmlns=""/></p:e></r>',
    '<a xml:lang="en"><b x=\'it"s\'>]></b></a>',
    '<Invoice><Item>Widget – größe</Item><名前 属性="値">x</名前></Invoice>',
    '<a>\uFFE0 \uFF08</a>',
  ];
  const broken = [
    '<a>',
    '<a></b>',
    '<a b="1" b="2"/>',
    '<a b=1/>',
    '<a>&foo;</a>',
    '<a>]]></a>',
    '<p:a/>',
    '<a xmlns:p="u" xmlns:q="u" p:x="1" q:x="2"/>',
    '<a/><b/>',
    'x<a/>',
    '<a><!-- -- --></a>',
    '<a>\u0001</a>',
    '<a b="<"/>',
    '<a>&#0;</a>',
    '<?xml version="1.0"?><?xml version="1.0"?><a/>',
    '<a ×="1"/>',
    '<a></a>x',
    '<a b="1"c="2"/>',
    '<a xmlns:p=""/>',
    '<a>\uFFFE</a>',
    '<a b="\uFFFF"/>',
    '<a xmlns:xml="urn:other"/>',
    '<a:b:c xmlns:a="u"/>',
    '',
  ];
  it('agrees with saxes on what is well-formed (each of these was checked with it)', () => {
    for (const xml of good) expect({ xml, kind: scanXml(Buffer.from(xml)).kind }).toEqual({ xml, kind: 'ok' });
    for (const xml of broken) expect({ xml, kind: scanXml(Buffer.from(xml)).kind }).toEqual({ xml, kind: 'malformed' });
    expect(scanXml(Buffer.from([0x3c, 0x61, 0x3e, 0xff, 0xfe, 0x3c, 0x2f, 0x61, 0x3e])).kind).toBe('malformed');
  });

  it('finds what ends a run of text however long the run: references, >, CR, control characters, the next tag, the end of data', () => {
    const run = (mid: string): string => `<a>${'x'.repeat(300)}${mid}${'y'.repeat(300)}</a>`;
    const xs = 'x'.repeat(300);
    const ys = 'y'.repeat(300);
    expect(canonical(run('&#65;&amp;'))).toBe(`<a>${xs}A&amp;${ys}</a>`);
    expect(canonical(run('>'))).toBe(`<a>${xs}&gt;${ys}</a>`);
    expect(canonical(run('\r\n\r'))).toBe(`<a>${xs}\n\n${ys}</a>`);
    expect(canonical(run('<b>Grüße</b>'))).toBe(`<a>${xs}<b>Grüße</b>${ys}</a>`);
    expect(scanXml(Buffer.from(run('\u0001')))).toEqual({ kind: 'malformed', reason: 'a control character (byte 303)' });
    expect(scanXml(Buffer.from(run(']]>'))).kind).toBe('malformed');
    expect(scanXml(Buffer.from(`<a>${xs}`))).toEqual({ kind: 'malformed', reason: 'the document ends inside an element (byte 303)' });
  });

  it('finds what ends a run of text at every offset in the run (runs are read several bytes a step)', () => {
    for (let k = 0; k < 10; k++) {
      const xs = 'x'.repeat(k);
      expect(canonical(`<a>${xs}&amp;${xs}>z\r\n</a>`)).toBe(`<a>${xs}&amp;${xs}&gt;z\n</a>`);
      expect(canonical(`<a>${xs}<b>${xs}</b>${xs}</a>`)).toBe(`<a>${xs}<b>${xs}</b>${xs}</a>`);
      expect(scanXml(Buffer.from(`<a>${xs}\u0001</a>`))).toEqual({ kind: 'malformed', reason: `a control character (byte ${3 + k})` });
      expect(scanXml(Buffer.from(`<a>${xs}`))).toEqual({ kind: 'malformed', reason: `the document ends inside an element (byte ${3 + k})` });
    }
  });

  it('checks start tags without attributes inside the root as any other: prefixes, names, whitespace', () => {
    expect(canonical('<r><a><b>t</b></a><p:c xmlns:p="u"><p:d></p:d></p:c><名>x</名><e\n></e ></r>')).toBe(
      '<r><a><b>t</b></a><p:c xmlns:p="u"><p:d></p:d></p:c><名>x</名><e></e></r>',
    );
    expect(scanXml(Buffer.from('<r><p:c></p:c></r>')).kind).toBe('malformed');
    expect(scanXml(Buffer.from('<r><a></b></r>')).kind).toBe('malformed');
    expect(scanXml(Buffer.from('<r><a><b></a></b></r>')).kind).toBe('malformed');
    expect(scanXml(Buffer.from('<r><1a></1a></r>')).kind).toBe('malformed');
    expect(scanXml(Buffer.from('<r><a×></a×></r>')).kind).toBe('malformed');
  });

  it('leaves a DOCTYPE to a full parser', () => {
    expect(scanXml(Buffer.from('<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>')).kind).toBe('unsupported');
  });

  it('writes Canonical XML 1.0 without comments, and finds the root end tag', () => {
    expect(
      canonical(
        '\uFEFF<?xml version="1.0"?>\n<!-- c -->\n<?pi  data ?>\n<a  b = \'1\'   a="2&gt;&quot;&apos;&#65;&#x9;x\ty\r\nz" ><b  ></b ><c/>t&gt;&quot;&apos;&#233;&#13;>]><![CDATA[x<y&z>]]><?p?><?q  r\r\ns?></a>\n<?after x?><!-- z -->\n',
      ),
    ).toBe('<?pi data ?>\n<a a="2>&quot;\'A&#x9;x y z" b="1"><b></b><c></c>t&gt;"\'é&#xD;&gt;]&gt;x&lt;y&amp;z&gt;<?p?><?q r\ns?></a>\n<?after x?>');
    expect(
      canonical(
        '<r xmlns="urn:x" xmlns:p="urn:p"><p:e xmlns:p="urn:p" xmlns="urn:x" p:z="1" a="2" xmlns:q="urn:q" q:a="3"><f xmlns=""><g xmlns=""/></f></p:e></r>',
      ),
    ).toBe('<r xmlns="urn:x" xmlns:p="urn:p"><p:e xmlns:q="urn:q" a="2" p:z="1" q:a="3"><f xmlns=""><g></g></f></p:e></r>');
    expect(canonical('<r xml:lang="en" z="1" xmlns:b="urn:b" b:y="1" xmlns:a="urn:a" a:y="2">Grüße &amp; thanks</r>')).toBe(
      '<r xmlns:a="urn:a" xmlns:b="urn:b" z="1" xml:lang="en" a:y="2" b:y="1">Grüße &amp; thanks</r>',
    );
    expect(canonical('<x>a\r\nb\rc</x>')).toBe('<x>a\nb\nc</x>');
    const doc = '<?xml version="1.0"?>\n<Invoice xmlns="urn:i">\n<ID>1</ID>\n</Invoice>\n';
    const r = scanXml(Buffer.from(doc));
    expect(r).toEqual({ kind: 'ok', rootEndTag: doc.indexOf('</Invoice>'), emptyRoot: false, rootName: 'Invoice' });
    expect(scanXml(Buffer.from('<?xml version="1.0"?><p:a xmlns:p="u" b="1" />\n'))).toEqual({ kind: 'ok', rootEndTag: 44, emptyRoot: true, rootName: 'p:a' });
  });
});
