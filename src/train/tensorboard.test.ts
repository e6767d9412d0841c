import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { maskedCrc32c, TensorBoardWriter } from "./tensorboard.ts";

/** Reads TFRecords back, checking both CRCs of each. */
function readRecords(buf: Buffer): Buffer[] {
  const records: Buffer[] = [];
  let at = 0;
  while (at < buf.length) {
    const length = Number(buf.readBigUInt64LE(at));
    expect(buf.readUInt32LE(at + 8)).toBe(maskedCrc32c(buf.subarray(at, at + 8)));
    const data = buf.subarray(at + 12, at + 12 + length);
    expect(buf.readUInt32LE(at + 12 + length)).toBe(maskedCrc32c(data));
    records.push(data);
    at += 16 + length;
  }
  return records;
}

type Fields = Map<number, (bigint | number | Buffer)[]>;

/** A minimal protobuf decoder: field number -> values (varint, double, float or bytes). */
function decode(buf: Buffer): Fields {
  const fields: Fields = new Map();
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const byte = buf[at++] as number;
      result |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return result;
      shift += 7n;
    }
  };
  while (at < buf.length) {
    const key = Number(varint());
    const field = key >> 3;
    let value: bigint | number | Buffer;
    if ((key & 7) === 0) value = varint();
    else if ((key & 7) === 1) value = buf.readDoubleLE((at += 8) - 8);
    else if ((key & 7) === 5) value = buf.readFloatLE((at += 4) - 4);
    else {
      const length = Number(varint());
      value = buf.subarray(at, (at += length));
    }
    fields.set(field, [...(fields.get(field) ?? []), value]);
  }
  return fields;
}

describe("TensorBoardWriter", () => {
  it("computes TFRecord's masked crc32c", () => {
    // crc32c("123456789") is 0xe3069283; masked: rotr15 + 0xa282ead8.
    const crc = 0xe3069283;
    const masked = (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
    expect(maskedCrc32c(Buffer.from("123456789"))).toBe(masked);
  });

  it("writes events that read back as the scalars given", () => {
    const dir = mkdtempSync(join(tmpdir(), "rl2048-tb-"));
    const writer = new TensorBoardWriter(dir, 40);
    writer.scalars(41, { reward: 2.5, "rewards/max_tile/mean": -0.75, kl: Number.NaN });
    writer.scalars(300000, { loss: 0.125 });
    writer.close();

    const records = readRecords(readFileSync(writer.path)).map(decode);
    expect(records).toHaveLength(4);
    expect(String(records[0]?.get(3)?.[0])).toBe("brain.Event:2");
    // The resume marker: step 40, SessionLog status START (1).
    expect(records[1]?.get(2)?.[0]).toBe(40n);
    expect(decode(records[1]?.get(6)?.[0] as Buffer).get(1)?.[0]).toBe(1n);

    const scalars = (event: Fields) =>
      Object.fromEntries(
        decode(event.get(5)?.[0] as Buffer)
          .get(1)!
          .map((v) => decode(v as Buffer))
          .map((v) => [String(v.get(1)?.[0]), v.get(2)?.[0]]),
      );
    expect(records[2]?.get(2)?.[0]).toBe(41n);
    expect(scalars(records[2]!)).toEqual({ reward: 2.5, "rewards/max_tile/mean": -0.75 });
    expect(records[3]?.get(2)?.[0]).toBe(300000n);
    expect(scalars(records[3]!)).toEqual({ loss: 0.125 });
    expect(records[3]?.get(1)?.[0]).toBeGreaterThan(1.7e9);
  });
});
