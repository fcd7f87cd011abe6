//! A Rust service sees the store's figures through the `metrics` facade
//! (feature `metrics`), under the names `/metrics.php` uses.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use stickless::metrics::names;
use stickless::{Config, OpenMode, Opened, SessionId, Store};
use support::RedisServer;

type Seen = Arc<Mutex<BTreeMap<String, u64>>>;

/// Counts per series: a counter's total, a histogram's number of samples.
struct Capture {
    seen: Seen,
}

struct Series {
    name: String,
    seen: Seen,
}

impl Series {
    fn add(&self, n: u64) {
        if let Ok(mut seen) = self.seen.lock() {
            *seen.entry(self.name.clone()).or_default() += n;
        }
    }
}

impl CounterFn for Series {
    fn increment(&self, value: u64) {
        self.add(value);
    }
    fn absolute(&self, _value: u64) {}
}

impl HistogramFn for Series {
    fn record(&self, _value: f64) {
        self.add(1);
    }
}

impl Capture {
    fn series(&self, key: &Key) -> Arc<Series> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}=\"{}\"", l.key(), l.value()))
            .collect();
        let name = if labels.is_empty() {
            key.name().to_owned()
        } else {
            format!("{}{{{}}}", key.name(), labels.join(","))
        };
        Arc::new(Series {
            name,
            seen: self.seen.clone(),
        })
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.series(key))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.series(key))
    }
}

#[test]
fn a_locked_request_and_a_destroy_reach_the_facade_under_the_shared_names() {
    let server = RedisServer::start();
    let capture = Capture {
        seen: Arc::default(),
    };
    let mut store = Store::new(Config::parse(&server.url()).expect("test URL parses"));
    let id = SessionId::parse("0123456789abcdef0123456789abcdef").expect("a valid ID");
    ::metrics::with_local_recorder(&capture, || {
        let Ok(Opened::Locked { lease, .. }) = store.lock(&id, OpenMode::CreateIfMissing) else {
            panic!("a free session locks");
        };
        store
            .commit(lease, b"n|i:1;".to_vec(), Duration::from_secs(60))
            .expect("the write applies");
        store.destroy(&id, None).expect("the session goes");
    });
    let seen = capture.seen.lock().expect("not poisoned").clone();
    let expect = |series: String, value: u64| {
        assert_eq!(seen.get(&series), Some(&value), "{series} in {seen:#?}");
    };
    expect(format!("{}{{outcome=\"locked\"}}", names::REQUESTS), 1);
    expect(names::LOCK_WAIT.to_owned(), 1);
    // Three steps, plus loading two scripts into a fresh server: whatever
    // the driver counted, the facade must have seen.
    expect(names::ROUND_TRIPS.to_owned(), store.round_trips());
    expect(format!("{}{{step=\"commit\"}}", names::STEP), 1);
    expect(names::BYTES_WRITTEN.to_owned(), 6);
    expect(names::CREATED.to_owned(), 1);
    expect(names::DESTROYED.to_owned(), 1);
}
