//! gzip through the runtime's `CompressionStream`, which runs natively in
//! workerd instead of as deflate compiled to wasm. Glue only: it needs the
//! JavaScript runtime, so it is exercised by the end-to-end tests (the rollup
//! reads every archive back with flate2).

use wasm_bindgen::prelude::*;
use web_sys::{Blob, ReadableStream, ReadableWritablePair, Response, WritableStream};
use worker::js_sys::{Array, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// The standard `CompressionStream` (web-sys has it only behind
    /// `web_sys_unstable_apis`).
    type CompressionStream;

    #[wasm_bindgen(constructor, catch)]
    fn new(format: &str) -> Result<CompressionStream, JsValue>;

    #[wasm_bindgen(method, getter)]
    fn readable(this: &CompressionStream) -> ReadableStream;

    #[wasm_bindgen(method, getter)]
    fn writable(this: &CompressionStream) -> WritableStream;
}

pub async fn gzip(raw: &[u8]) -> Result<Vec<u8>, JsValue> {
    let blob = Blob::new_with_u8_array_sequence(&Array::of1(&Uint8Array::from(raw)))?;
    let stream = CompressionStream::new("gzip")?;
    let compressed = blob.stream().pipe_through(&ReadableWritablePair::new(&stream.readable(), &stream.writable()));
    let response = Response::new_with_opt_readable_stream(Some(&compressed))?;
    let buffer = JsFuture::from(response.array_buffer()?).await?;
    Ok(Uint8Array::new(&buffer).to_vec())
}
