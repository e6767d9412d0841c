/**
 * A TensorBoard event file writer for scalars, so `tensorboard --logdir outputs` shows a run.
 *
 * No maintained npm package writes event files, so this is the format itself: TFRecord records
 * (u64 length, masked crc32c of the length, data, masked crc32c of the data), each holding an
 * `Event` protobuf encoded by hand: wall_time (1, double), step (2, int64), file_version
 * (3, string), summary (5: repeated Value {tag (1), simple_value (2, float)}), session_log (6).
 */
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { crc32c } from "@aws-crypto/crc32c";

/** TFRecord's masked CRC: rotate right by 15 and add a constant, modulo 2^32. */
export function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data);
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

class ProtoWriter {
  private parts: number[] = [];

  private varint(value: bigint): void {
    let v = BigInt.asUintN(64, value);
    while (v >= 0x80n) {
      this.parts.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.parts.push(Number(v));
  }
  private key(field: number, wireType: number): void {
    this.varint(BigInt((field << 3) | wireType));
  }
  int64(field: number, value: number): this {
    this.key(field, 0);
    this.varint(BigInt(Math.trunc(value)));
    return this;
  }
  double(field: number, value: number): this {
    this.key(field, 1);
    const buf = Buffer.alloc(8);
    buf.writeDoubleLE(value);
    this.parts.push(...buf);
    return this;
  }
  float(field: number, value: number): this {
    this.key(field, 5);
    const buf = Buffer.alloc(4);
    buf.writeFloatLE(value);
    this.parts.push(...buf);
    return this;
  }
  bytes(field: number, value: Uint8Array): this {
    this.key(field, 2);
    this.varint(BigInt(value.length));
    this.parts.push(...value);
    return this;
  }
  string(field: number, value: string): this {
    return this.bytes(field, Buffer.from(value, "utf8"));
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

/** One TFRecord: length, its masked crc, the data, its masked crc. */
export function tfRecord(data: Uint8Array): Buffer {
  const header = Buffer.alloc(12);
  header.writeBigUInt64LE(BigInt(data.length), 0);
  header.writeUInt32LE(maskedCrc32c(header.subarray(0, 8)), 8);
  const footer = Buffer.alloc(4);
  footer.writeUInt32LE(maskedCrc32c(data), 0);
  return Buffer.concat([header, data, footer]);
}

export class TensorBoardWriter {
  readonly path: string;
  private fd: number;

  /**
   * Opens a new event file in `logdir`. `startStep` (when resuming) writes a SessionLog START
   * at that step, which tells TensorBoard to drop the older file's events from that step on.
   */
  constructor(logdir: string, startStep?: number) {
    mkdirSync(logdir, { recursive: true });
    const seconds = Math.floor(Date.now() / 1000);
    this.path = join(logdir, `events.out.tfevents.${seconds}.${hostname()}.${process.pid}`);
    this.fd = openSync(this.path, "a");
    this.write(
      new ProtoWriter()
        .double(1, Date.now() / 1000)
        .string(3, "brain.Event:2")
        .finish(),
    );
    if (startStep !== undefined) {
      const sessionLog = new ProtoWriter().int64(1, 1).finish(); // status: START
      this.write(
        new ProtoWriter()
          .double(1, Date.now() / 1000)
          .int64(2, startStep)
          .bytes(6, sessionLog)
          .finish(),
      );
    }
  }

  /** Writes every finite number of `scalars` at `step` as one event. */
  scalars(step: number, scalars: Record<string, number>): void {
    const summary = new ProtoWriter();
    for (const [tag, value] of Object.entries(scalars)) {
      if (!Number.isFinite(value)) continue;
      summary.bytes(1, new ProtoWriter().string(1, tag).float(2, value).finish());
    }
    const event = new ProtoWriter()
      .double(1, Date.now() / 1000)
      .int64(2, step)
      .bytes(5, summary.finish());
    this.write(event.finish());
  }

  private write(event: Uint8Array): void {
    writeSync(this.fd, tfRecord(event));
  }

  close(): void {
    closeSync(this.fd);
  }
}
