// `concurrency=merge` for both drivers: included by `blocking.rs` and
// `aio.rs` after the behaviour suite, whose helpers it uses.

mod merge_mode {
    use super::*;
    use stickless::php::SerializeHandler;
    use stickless::{Compression, Fallback, KeyRing, MergeBase, MergeOpened, Merged};

    const PHP: Option<SerializeHandler> = Some(SerializeHandler::Php);

    fn open(store: &mut Store, id: &SessionId) -> MergeBase {
        match store
            .open_merge(id, PHP, OpenMode::CreateIfMissing, TTL)
            .expect("merge read succeeds")
        {
            MergeOpened::Unlocked(base) => base,
            other => panic!("expected a merge read, got {other:?}"),
        }
    }

    fn write(store: &mut Store, base: MergeBase, payload: &str) -> Merged {
        store
            .commit_merge(base, payload.as_bytes().to_vec(), TTL)
            .expect("merge write succeeds")
    }

    fn payload(store: &mut Store, id: &SessionId) -> String {
        String::from_utf8(stored(store, id).payload).expect("test payloads are text")
    }

    /// A session holding `payload`, written the ordinary way.
    fn seeded(store: &mut Store, name: &str, payload: &str) -> SessionId {
        let id = sid(name);
        let (lease, _, _) = lock(store, &id);
        store
            .commit(lease, payload.as_bytes().to_vec(), TTL)
            .expect("seed commit");
        id
    }

    #[test]
    fn merge_writes_of_different_keys_both_survive() {
        let server = RedisServer::start();
        let (mut one, mut two) = (store(&server, ""), store(&server, ""));
        let id = seeded(&mut one, "merge-different", "a|i:0;b|i:0;");
        let first = open(&mut one, &id);
        let second = open(&mut two, &id);
        let done = write(&mut one, first, "a|i:1;b|i:0;");
        assert_eq!((done.written, done.replayed), (true, false));
        let done = write(&mut two, second, "a|i:0;b|i:1;c|s:1:\"x\";");
        assert!(done.replayed && done.conflicts.is_empty(), "{done:?}");
        assert_eq!(payload(&mut one, &id), "a|i:1;b|i:1;c|s:1:\"x\";");
        assert_eq!(stored(&mut one, &id).revision, 3);
    }

    /// How often the server ran `command`, scripts' calls included.
    fn calls(con: &mut impl redis::ConnectionLike, command: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(con)
            .expect("INFO commandstats");
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn large_merge_writes_are_staged_replayed_alike_and_leave_no_stage_behind() {
        // From 1 KB a merge write is staged like a locked commit: the
        // script moves the staged copy into place instead of copying the
        // envelope through Lua; a conflict deletes the stage and replays.
        let server = RedisServer::start();
        let (mut one, mut two) = (store(&server, ""), store(&server, ""));
        let big = "x".repeat(4000);
        let seed = format!("a|i:0;b|s:4000:\"{big}\";");
        let id = seeded(&mut one, "merge-staged", &seed);
        let mut con = server.client();
        let renames = calls(&mut con, "rename");
        let first = open(&mut one, &id);
        let second = open(&mut two, &id);
        let done = write(&mut one, first, &format!("a|i:1;b|s:4000:\"{big}\";"));
        assert_eq!((done.written, done.replayed), (true, false));
        let done = write(&mut two, second, &format!("a|i:0;b|s:4000:\"{big}\";c|i:2;"));
        assert!(done.replayed && done.conflicts.is_empty(), "{done:?}");
        assert_eq!(
            payload(&mut one, &id),
            format!("a|i:1;b|s:4000:\"{big}\";c|i:2;")
        );
        // The first write and the replay went in by RENAME; the try that
        // met the first write's change deleted its stage.
        assert_eq!(calls(&mut con, "rename") - renames, 2);
        let data = one.keys(&id).data();
        let left: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).expect("KEYS");
        assert_eq!(left, vec![data.clone()], "only the session is left");
        // Moved into place with the session's lifetime, not the stage's.
        let ttl: i64 = redis::cmd("PTTL").arg(&data).query(&mut con).expect("PTTL");
        assert!(ttl > 50_000 && ttl <= 60_000, "data PTTL {ttl}");
    }

    #[test]
    fn a_key_both_requests_changed_keeps_the_first_write_and_is_named() {
        let server = RedisServer::start();
        let (mut one, mut two) = (store(&server, ""), store(&server, ""));
        let id = seeded(&mut one, "merge-conflict", "cart|i:1;seen|i:0;");
        let first = open(&mut one, &id);
        let second = open(&mut two, &id);
        write(&mut one, first, "cart|i:2;seen|i:0;");
        let done = write(&mut two, second, "cart|i:3;seen|i:1;");
        assert_eq!(done.conflicts, ["cart"]);
        assert_eq!(payload(&mut one, &id), "cart|i:2;seen|i:1;");
    }

    #[test]
    fn an_unchanged_merge_request_costs_one_round_trip_and_renews_the_lifetime() {
        let server = RedisServer::start();
        let mut store = store(&server, "");
        let id = seeded(&mut store, "merge-unchanged", "a|i:1;");
        let key = store.keys(&id).data();
        let mut redis = server.client();
        let _: () = redis.pexpire(&key, 5_000).expect("PEXPIRE");
        let before = store.round_trips();
        let base = open(&mut store, &id);
        let done = write(&mut store, base, "a|i:1;");
        assert_eq!(store.round_trips() - before, 1);
        assert!(!done.written);
        let ttl: i64 = redis.pttl(&key).expect("PTTL");
        assert!(ttl > 50_000, "lifetime not renewed: {ttl} ms");
    }

    #[test]
    fn a_merge_write_waits_for_a_lock_holder_and_replays_onto_its_write() {
        let server = RedisServer::start();
        let mut holder = store(&server, "");
        let id = seeded(&mut holder, "merge-under-lock", "a|i:0;b|i:0;");
        let mut merger = store(&server, "");
        let base = open(&mut merger, &id);
        let (lease, _, _) = lock(&mut holder, &id);
        let (tx, rx) = mpsc::channel();
        let writer = thread::spawn(move || {
            let done = write(&mut merger, base, "a|i:0;b|i:1;");
            let _ = tx.send(());
            done
        });
        // The holder read the session before the merge write: the write must
        // not land under it.
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "the merge write went in while another request held the lock"
        );
        holder
            .commit(lease, b"a|i:1;b|i:0;".to_vec(), TTL)
            .expect("the holder's fenced commit");
        let done = writer.join().expect("merge writer");
        assert!(done.replayed && done.conflicts.is_empty(), "{done:?}");
        assert_eq!(payload(&mut holder, &id), "a|i:1;b|i:1;");
    }

    #[test]
    fn a_lapsed_lock_holder_does_not_overwrite_a_merge_write_and_hears_why() {
        // The holder's renewals could not reach Redis for a whole lease (the
        // lock key is gone): merge writes go in again, and the holder's
        // commit must not silently put its older view back.
        let server = RedisServer::start();
        let mut holder = store(&server, "");
        let id = seeded(&mut holder, "merge-lapsed", "a|i:0;b|i:0;");
        let (lease, _, _) = lock(&mut holder, &id);
        let mut redis = server.client();
        let _: () = redis.del(holder.keys(&id).lock()).expect("DEL");
        let mut merger = store(&server, "");
        let base = open(&mut merger, &id);
        let done = write(&mut merger, base, "a|i:0;b|i:1;");
        assert!(done.written && !done.replayed, "{done:?}");
        match holder.commit(lease, b"a|i:1;b|i:0;".to_vec(), TTL) {
            Err(Error::LockLost {
                reason: LostReason::Changed,
                ..
            }) => {}
            other => panic!("expected the lapsed write refused, got {other:?}"),
        }
        assert_eq!(payload(&mut holder, &id), "a|i:0;b|i:1;");
    }

    #[test]
    fn sessions_holding_references_take_the_lock() {
        let server = RedisServer::start();
        let mut store = store(&server, "");
        let id = seeded(&mut store, "merge-refs", "a|a:1:{i:0;i:1;}b|R:2;");
        match store
            .open_merge(&id, PHP, OpenMode::CreateIfMissing, TTL)
            .expect("open")
        {
            MergeOpened::Locked {
                fallback: Fallback::References,
                opened: Opened::Locked { lease, .. },
            } => store.release(lease).expect("release"),
            other => panic!("expected the lock, got {other:?}"),
        }
    }

    #[test]
    fn encrypted_and_compressed_sessions_merge_alike() {
        let server = RedisServer::start();
        let sealed = || {
            let mut config = Config::parse(&url(&server, "compression=zstd&compression_threshold=0"))
                .expect("URL parses");
            config.settings.encryption_keys = Some(
                KeyRing::parse("k1:QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")
                    .expect("key ring"),
            );
            assert_eq!(config.settings.compression, Compression::Zstd);
            Store::new(config)
        };
        let (mut one, mut two) = (sealed(), sealed());
        let id = seeded(&mut one, "merge-sealed", "a|i:0;b|i:0;");
        let first = open(&mut one, &id);
        let second = open(&mut two, &id);
        write(&mut one, first, "a|i:1;b|i:0;");
        let done = write(&mut two, second, "a|i:0;b|i:1;");
        assert!(done.replayed, "{done:?}");
        let env = stored(&mut one, &id);
        assert_eq!(env.payload, b"a|i:1;b|i:1;");
        let mut redis = server.client();
        let raw: Vec<u8> = redis.get(one.keys(&id).data()).expect("GET");
        assert!(
            !raw.windows(6).any(|w| w == b"a|i:1;"),
            "stored in clear"
        );
    }
}
