//! The prost codec with small starting buffers.
//!
//! tonic's default gives each open stream an 8 KiB encode buffer, kept for as long as the
//! stream is open. An agent holds several subscriptions open for its whole life (OCM's agents
//! subscribe once per resource type), so at thousands of agents these buffers were the largest
//! per-connection cost in the hub after HTTP/2's own (heaptrack, 1,000 simulated spokes: about
//! 23 KiB per spoke). CloudEvents here are mostly well under 1 KiB; larger ones grow the buffer
//! as they need.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Where each stream's encode and decode buffers start.
pub const BUFFER_SIZE: usize = 1024;
/// tonic's default: how much a stream encodes before it yields to the runtime.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// [`ProstCodec`] with [`BUFFER_SIZE`] buffers; the generated client and server use it.
#[derive(Debug, Clone, Copy)]
pub struct SmallBufferCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
