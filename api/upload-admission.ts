/**
 * Admission of uploads: at most UPLOAD_CONCURRENCY request bodies are read at once; the others
 * wait, in arrival order, with their bytes left in the kernel's socket buffers (TCP pushes back on
 * the client). Under a burst of more uploads than the api can take, reading all of them at once
 * shares the CPU among hundreds of half-read bodies (every one slow, buffers and GC growing with
 * their number); taking them a few at a time keeps the api at its best rate and answers them
 * first come, first served.
 */
export class UploadAdmission {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly limit: number,
    /** Told the counts after every change (the api's `signspool_uploads` gauge). */
    private readonly onChange: (counts: { active: number; waiting: number }) => void = () => undefined,
  ) {
    this.changed();
  }

  /** Uploads being read now, and waiting for their turn (metrics, tests). */
  get counts(): { active: number; waiting: number } {
    return { active: this.active, waiting: this.waiting.length };
  }

  /**
   * Resolves with a release function once the upload may be read. `onGone` receives a cancel
   * function to call when the client goes away: a waiting upload then leaves the queue and
   * resolves with undefined (after admission, cancel does nothing).
   */
  admit(onGone: (cancel: () => void) => void): Promise<(() => void) | undefined> {
    if (this.active < this.limit) {
      this.active++;
      this.changed();
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve) => {
      const turn = (): void => {
        this.active++;
        resolve(this.releaser());
      };
      this.waiting.push(turn);
      this.changed();
      onGone(() => {
        const i = this.waiting.indexOf(turn);
        if (i === -1) return;
        this.waiting.splice(i, 1);
        this.changed();
        resolve(undefined);
      });
    });
  }

  /** A release that works once. */
  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.active--;
      this.waiting.shift()?.();
      this.changed();
    };
  }

  private changed(): void {
    this.onChange(this.counts);
  }
}
