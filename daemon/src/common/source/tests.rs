use super::*;

#[test]
fn every_spelling_of_one_ipv4_address_is_that_address() {
    // On the old main, `source_key` kept the zone id and port forms
    // verbatim: each was a source of its own.
    for rhost in [
        "192.0.2.1",
        "::ffff:192.0.2.1",
        "::FFFF:192.0.2.1",
        "[::ffff:192.0.2.1]",
        "0:0:0:0:0:ffff:c000:0201",
        "::ffff:192.0.2.1%eth0",
        "[::ffff:192.0.2.1%eth0]:22",
        "[::ffff:192.0.2.1]:2222",
        "192.0.2.1:22",
    ] {
        assert_eq!(canonical(rhost), "192.0.2.1", "{rhost}");
        assert_eq!(Sources::default().key(rhost), "192.0.2.1", "{rhost}");
    }
}

#[test]
fn every_spelling_of_one_ipv6_address_is_that_address() {
    for rhost in [
        "2001:db8:1:2::a",
        "2001:0DB8:0001:0002:0000:0000:0000:000A",
        "[2001:db8:1:2::a]",
        "[2001:db8:1:2::a]:22",
        "2001:db8:1:2::a%eth0",
    ] {
        assert_eq!(canonical(rhost), "2001:db8:1:2::a", "{rhost}");
        assert_eq!(
            Sources::default().key(rhost),
            "2001:db8:1:2::/64",
            "{rhost}"
        );
    }
}

#[test]
fn anything_that_is_not_an_address_is_the_one_source_names() {
    // On the old main each of these was a source of its own: a PTR name
    // per guess was a fresh counter and a fresh fair share.
    for rhost in [
        "host.example",
        "a1.attacker.example",
        "local",
        "ruser:alice",
        "uid:0",
        "192.0.2.1:99999",
        "192.000.002.001",
        "[192.0.2.1",
        "[::1]x",
        "%eth0",
        "192.0.2.1%eth0",
    ] {
        assert_eq!(canonical(rhost), NAMES, "{rhost}");
        assert_eq!(Sources::default().key(rhost), NAMES, "{rhost}");
    }
}

#[test]
fn the_prefixes_group_addresses() {
    let s = Sources {
        ipv4_prefix: 24,
        ipv6_prefix: 48,
        exempt: Vec::new(),
    };
    assert_eq!(s.key("192.0.2.77"), "192.0.2.0/24");
    assert_eq!(s.key("::ffff:192.0.2.1"), "192.0.2.0/24");
    assert_eq!(s.key("2001:db8:1:2::1"), "2001:db8:1::/48");
    assert_eq!(s.key("2001:db8:1:ffff::1"), "2001:db8:1::/48");
    let each = Sources {
        ipv4_prefix: 32,
        ipv6_prefix: 128,
        exempt: Vec::new(),
    };
    assert_eq!(each.key("2001:db8::1"), "2001:db8::1");
    assert_eq!(each.key("192.0.2.1"), "192.0.2.1");
}

#[test]
fn networks_parse_strictly() {
    let ok = |s: &str| s.parse::<Network>().unwrap().to_string();
    assert_eq!(ok("10.0.0.0/8"), "10.0.0.0/8");
    assert_eq!(ok("192.0.2.7"), "192.0.2.7");
    assert_eq!(ok("192.0.2.7/32"), "192.0.2.7");
    assert_eq!(ok("2001:DB8::/32"), "2001:db8::/32");
    for bad in [
        "10.0.0.1/8",
        "10.0.0.0/33",
        "10.0.0.0/",
        "10.0.0.0/+8",
        "10.0.0.0/08",
        "2001:db8::/129",
        "::ffff:10.0.0.0/104",
        "admin.example",
        "",
    ] {
        assert!(bad.parse::<Network>().is_err(), "{bad}");
    }
}

#[test]
fn an_exempt_network_holds_its_addresses_in_any_spelling_and_no_name() {
    let s = Sources {
        exempt: vec![
            "198.51.100.0/24".parse().unwrap(),
            "2001:db8:a::/48".parse().unwrap(),
        ],
        ..Sources::default()
    };
    assert!(s.exempt(&canonical("198.51.100.7")));
    assert!(s.exempt(&canonical("[::ffff:198.51.100.7]:22")));
    assert!(s.exempt(&canonical("2001:db8:a:5::1")));
    assert!(!s.exempt(&canonical("198.51.101.7")));
    assert!(!s.exempt(&canonical("2001:db8:b::1")));
    assert!(!s.exempt(&canonical("admin.example")));
    assert!(!s.exempt(NAMES));
}
