/** The kept status answers' budget (api/read/status-answers.ts BoundedMap): within its bytes, the oldest let go first. */
import { describe, expect, it } from 'vitest';
import { BoundedMap } from '@signspool/api/read/status-answers';

const v = (bytes: number, tag = '') => ({ bytes, tag });

describe('BoundedMap', () => {
  it('keeps values within its bytes, letting the oldest go first', () => {
    const m = new BoundedMap<ReturnType<typeof v>>(100);
    m.set('a', v(40));
    m.set('b', v(40));
    expect(m.size).toEqual({ values: 2, bytes: 80 });
    m.set('c', v(40));
    expect(m.get('a')).toBeUndefined();
    expect(m.get('b')).toEqual(v(40));
    expect(m.size).toEqual({ values: 2, bytes: 80 });
  });

  it('replaces a value (its bytes counted once, as the newest), and keeps none over the budget alone', () => {
    const m = new BoundedMap<ReturnType<typeof v>>(100);
    m.set('a', v(30));
    m.set('b', v(30));
    m.set('a', v(50, 'new'));
    expect(m.size).toEqual({ values: 2, bytes: 80 });
    m.set('c', v(30));
    expect(m.get('b')).toBeUndefined();
    expect(m.get('a')).toEqual(v(50, 'new'));
    m.set('c', v(101));
    expect(m.get('c')).toBeUndefined();
    expect(m.size).toEqual({ values: 1, bytes: 50 });
  });
});
