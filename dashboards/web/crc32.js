// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320): zlib's crc32, the one Kraken's book checksum uses and the
// server computes in crates/core/src/market/crc32.rs.

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/**
 * CRC-32 of a string of single-byte characters (the checksum input is ASCII digits and "-" only), as an unsigned
 * 32-bit integer like the server's `checksum` field.
 * @param {string} s
 * @returns {number}
 */
export function crc32(s) {
  let c = 0xffffffff;
  for (let i = 0; i < s.length; i++) c = TABLE[(c ^ s.charCodeAt(i)) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
