//! Golden bytes: each message encodes with exactly the field numbers and wire types of OCM's
//! `cloudevent.proto` (sdk-go's gRPC service). A renumbered field breaks interop silently, so
//! the expected bytes are written out by hand here rather than derived from the code.

use prost::Message as _;

use crate::v1::cloud_event::Data;
use crate::v1::cloud_event_attribute_value::Attr;
use crate::{CloudEvent, CloudEventAttributeValue, PublishRequest, SubscriptionRequest};

fn attr(attr: Attr) -> CloudEventAttributeValue {
    CloudEventAttributeValue { attr: Some(attr) }
}

/// One `check` per message: `value` must encode to `expected` and decode back to `value`.
fn check<M: prost::Message + Default + PartialEq + std::fmt::Debug>(value: &M, expected: &[u8]) {
    let encoded = value.encode_to_vec();
    assert_eq!(encoded, expected, "encoding of {value:?}");
    assert_eq!(
        &M::decode(expected).unwrap(),
        value,
        "decoding of {expected:02x?}"
    );
}

#[test]
fn cloud_event_core_fields_attributes_and_binary_data_use_the_reference_numbers() {
    let event = CloudEvent {
        id: "i".into(),
        source: "s".into(),
        spec_version: "1.0".into(),
        r#type: "t".into(),
        attributes: [("ce-x".to_owned(), attr(Attr::CeInteger(5)))]
            .into_iter()
            .collect(),
        data: Some(Data::BinaryData(b"{}".to_vec())),
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x01, b'i',                          // 1: id
        0x12, 0x01, b's',                          // 2: source
        0x1a, 0x03, b'1', b'.', b'0',              // 3: spec_version
        0x22, 0x01, b't',                          // 4: type
        0x2a, 0x0a,                                // 5: attributes map entry
            0x0a, 0x04, b'c', b'e', b'-', b'x',    //    key
            0x12, 0x02, 0x10, 0x05,                //    value: ce_integer (2) = 5
        0x32, 0x02, b'{', b'}',                    // 6: binary_data
    ];
    check(&event, &expected);
}

#[test]
fn text_and_proto_data_take_fields_seven_and_eight() {
    let text = CloudEvent {
        data: Some(Data::TextData("x".into())),
        ..Default::default()
    };
    check(&text, &[0x3a, 0x01, b'x']);
    let any = prost_types::Any {
        type_url: "u".into(),
        value: vec![1],
    };
    let proto = CloudEvent {
        data: Some(Data::ProtoData(any)),
        ..Default::default()
    };
    check(&proto, &[0x42, 0x06, 0x0a, 0x01, b'u', 0x12, 0x01, 0x01]);
}

#[test]
fn every_attribute_value_variant_uses_its_reference_number() {
    let timestamp = prost_types::Timestamp {
        seconds: 1,
        nanos: 2,
    };
    let cases: [(Attr, &[u8]); 8] = [
        (Attr::CeBoolean(true), &[0x08, 0x01]),
        (Attr::CeInteger(7), &[0x10, 0x07]),
        // int32 -1 is sign-extended to a ten-byte varint, as Go encodes it.
        (
            Attr::CeInteger(-1),
            &[
                0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
        ),
        (Attr::CeString("a".into()), &[0x1a, 0x01, b'a']),
        (Attr::CeBytes(vec![0xab]), &[0x22, 0x01, 0xab]),
        (Attr::CeUri("u".into()), &[0x2a, 0x01, b'u']),
        (Attr::CeUriRef("r".into()), &[0x32, 0x01, b'r']),
        (
            Attr::CeTimestamp(timestamp),
            &[0x3a, 0x04, 0x08, 0x01, 0x10, 0x02],
        ),
    ];
    for (value, expected) in cases {
        check(&attr(value), expected);
    }
}

#[test]
fn subscription_and_publish_requests_use_the_reference_numbers() {
    let subscription = SubscriptionRequest {
        source: "a".into(),
        cluster_name: "b".into(),
        data_type: "c".into(),
    };
    check(
        &subscription,
        &[0x0a, 0x01, b'a', 0x12, 0x01, b'b', 0x1a, 0x01, b'c'],
    );
    let publish = PublishRequest {
        event: Some(CloudEvent {
            id: "i".into(),
            ..Default::default()
        }),
    };
    check(&publish, &[0x0a, 0x03, 0x0a, 0x01, b'i']);
}

#[test]
fn unknown_fields_from_a_newer_peer_are_skipped() {
    // id = "i", then an unknown field 15 (varint 1) a future peer might add.
    let decoded = CloudEvent::decode(&[0x0a, 0x01, b'i', 0x78, 0x01][..]).unwrap();
    assert_eq!(decoded.id, "i");
}

#[test]
fn service_is_named_as_ocm_names_it() {
    assert_eq!(
        crate::v1::cloud_event_service_server::SERVICE_NAME,
        "io.cloudevents.v1.CloudEventService"
    );
}
