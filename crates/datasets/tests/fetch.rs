//! Downloads against a loopback HTTP server (127.0.0.1 only, ephemeral port) serving
//! fixtures made in the test: success and unpacking (gz and zip), checksum mismatch,
//! truncated body, HTTP errors, an interrupted download restarted, mirrors, a cache hit
//! with the server stopped, and the lookup order of the data-set folders.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use datasets::DatasetError;
use datasets::fetch::{
    DatasetKind, NoProgress, Packing, Place, Places, Progress, RemoteFile, Source, fetch, locate, locate_or_fetch,
};
use md5::{Digest, Md5};

// ---------------------------------------------------------------------------------------
// A tiny HTTP/1.1 server for the tests.

/// What the server answers to one request.
#[derive(Clone)]
enum Reply {
    /// 200 with this body.
    Body(Vec<u8>),
    /// This status, empty body.
    Status(u16),
    /// 200 announcing the full length of `body` but sending only its first `send` bytes,
    /// then closing the connection.
    CutOff { body: Vec<u8>, send: usize },
}

struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    /// Request paths in order of arrival.
    log: Arc<Mutex<Vec<String>>>,
}

type Route = dyn Fn(&str, usize) -> Reply + Send + Sync;

impl Server {
    /// Serves `route(path, n)` where `n` counts earlier requests of the same path.
    fn start(route: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let route: Arc<Route> = Arc::new(route);
        let (stop2, log2) = (stop.clone(), log.clone());
        let handle = std::thread::spawn(move || {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let Some(path) = read_request_path(&mut conn) else { continue };
                let n = counts.entry(path.clone()).or_insert(0);
                let reply = route(&path, *n);
                *n += 1;
                log2.lock().unwrap().push(path);
                let _ = write_reply(&mut conn, &reply);
            }
        });
        Server { addr, stop, handle: Some(handle), log }
    }

    fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Stops the server; afterwards connections to its port are refused.
    fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn read_request_path(conn: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head).lines().next()?.to_string();
    Some(line.split_whitespace().nth(1)?.trim_start_matches('/').to_string())
}

fn write_reply(conn: &mut TcpStream, reply: &Reply) -> std::io::Result<()> {
    let (status, body, send) = match reply {
        Reply::Body(b) => (200, b.as_slice(), b.len()),
        Reply::Status(s) => (*s, &[][..], 0),
        Reply::CutOff { body, send } => (200, body.as_slice(), *send),
    };
    write!(conn, "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
    conn.write_all(&body[..send])?;
    conn.flush()?;
    conn.shutdown(std::net::Shutdown::Both)
}

// ---------------------------------------------------------------------------------------
// Fixtures.

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zip_with(member: &str, bytes: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    w.start_file(format!("some/folder/{member}"), opts).unwrap();
    w.write_all(bytes).unwrap();
    w.start_file("README.txt", opts).unwrap();
    w.write_all(b"not this one").unwrap();
    w.finish().unwrap().into_inner()
}

/// Bytes that do not compress (a fixed linear congruential sequence).
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}

/// A tiny MNIST: `n` train and `n / 2` test images of 28 x 28, as the four IDX files.
fn tiny_mnist(n: u32) -> Vec<(&'static str, Vec<u8>)> {
    let images = |k: u32| datasets::encode_idx(&[k, 28, 28], &vec![7u8; (k * 784) as usize]);
    let labels = |k: u32| datasets::encode_idx(&[k], &(0..k).map(|i| (i % 10) as u8).collect::<Vec<_>>());
    vec![
        ("train-images-idx3-ubyte", images(n)),
        ("train-labels-idx1-ubyte", labels(n)),
        ("t10k-images-idx3-ubyte", images(n / 2)),
        ("t10k-labels-idx1-ubyte", labels(n / 2)),
    ]
}

/// A scratch folder under the target directory, fresh for each test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fetch-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn one_file(kind: DatasetKind, name: &str, urls: Vec<String>, md5: &str, packing: Packing) -> Source {
    Source { kind, files: vec![RemoteFile::new(name, urls, md5, packing).unwrap()] }
}

/// Records every progress call.
#[derive(Default)]
struct Recorder {
    steps: Vec<(String, Option<u64>, u64)>,
}

impl Progress for Recorder {
    fn start(&mut self, what: &str, total: Option<u64>) {
        self.steps.push((what.to_string(), total, 0));
    }
    fn advance(&mut self, bytes: u64) {
        self.steps.last_mut().unwrap().2 += bytes;
    }
    fn finish(&mut self) {}
}

// ---------------------------------------------------------------------------------------
// Downloads.

#[test]
fn gz_files_are_downloaded_verified_unpacked_and_load() {
    let files = tiny_mnist(20);
    let served: HashMap<String, Vec<u8>> = files.iter().map(|(n, b)| (format!("{n}.gz"), gzip(b))).collect();
    let served2 = served.clone();
    let server = Server::start(move |path, _| served2.get(path).cloned().map_or(Reply::Status(404), Reply::Body));
    let source = Source {
        kind: DatasetKind::Mnist,
        files: files
            .iter()
            .map(|(n, _)| {
                let gz = format!("{n}.gz");
                RemoteFile::new(*n, vec![server.url(&gz)], md5_hex(&served[&gz]), Packing::Gzip).unwrap()
            })
            .collect(),
    };
    let dir = scratch("gz-success").join("mnist");
    let mut rec = Recorder::default();
    assert_eq!(fetch(&source, &dir, &mut rec).unwrap(), 4);
    // Unpacked files only, no temporary files.
    let mut names: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(listing(&dir), names);
    for (n, b) in &files {
        assert_eq!(&std::fs::read(dir.join(n)).unwrap(), b, "{n}");
    }
    let m = datasets::load_mnist(&dir).unwrap();
    assert_eq!((m.train.len(), m.test.len()), (20, 10));
    // Progress: a download step (with the Content-Length) and an unpack step per file, all bytes counted.
    assert_eq!(rec.steps.len(), 8);
    for (i, (n, b)) in files.iter().enumerate() {
        let (what, total, done) = &rec.steps[2 * i];
        assert!(what.starts_with("download ") && what.ends_with(&format!("{n}.gz")), "{what}");
        let gz_len = served[&format!("{n}.gz")].len() as u64;
        assert_eq!((*total, *done), (Some(gz_len), gz_len));
        let (what, _, done) = &rec.steps[2 * i + 1];
        assert_eq!(what, &format!("unpack {n}"));
        assert_eq!(*done, b.len() as u64);
    }
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn zip_archives_are_unpacked_to_their_member() {
    let content = b"pretend this is shd_train.h5".repeat(1000);
    let archive = zip_with("shd_train.h5", &content);
    let md5 = md5_hex(&archive);
    let served = archive.clone();
    let server =
        Server::start(
            move |path, _| {
                if path == "shd_train.h5.zip" { Reply::Body(served.clone()) } else { Reply::Status(404) }
            },
        );
    let source = one_file(
        DatasetKind::Shd,
        "shd_train.h5",
        vec![server.url("shd_train.h5.zip")],
        &md5,
        Packing::Zip { member: "shd_train.h5".into() },
    );
    let dir = scratch("zip-success");
    let mut rec = Recorder::default();
    assert_eq!(fetch(&source, &dir, &mut rec).unwrap(), 1);
    assert_eq!(listing(&dir), ["shd_train.h5"]);
    assert_eq!(std::fs::read(dir.join("shd_train.h5")).unwrap(), content);
    assert_eq!(rec.steps[1], ("unpack shd_train.h5".to_string(), Some(content.len() as u64), content.len() as u64));
}

#[test]
fn with_base_url_keeps_the_official_checksums() {
    // The official SHD checksum cannot match a fixture: the download is refused and nothing is kept.
    let archive = zip_with("shd_train.h5", b"fake");
    let server = Server::start(move |_, _| Reply::Body(archive.clone()));
    let source = Source::with_base_url(DatasetKind::Shd, &server.url(""));
    let dir = scratch("base-url");
    match fetch(&source, &dir, &mut NoProgress) {
        Err(DatasetError::ChecksumMismatch { url, expected, .. }) => {
            assert_eq!(url, server.url("shd_train.h5.zip"));
            assert_eq!(expected, "f3252aeb598ac776c1b526422d90eecb");
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
}

#[test]
fn checksum_mismatch_is_typed_and_leaves_nothing() {
    let body = gzip(b"some bytes");
    let served = body.clone();
    let server = Server::start(move |_, _| Reply::Body(served.clone()));
    let wrong = "0123456789abcdef0123456789abcdef";
    let source = one_file(DatasetKind::Mnist, "x-idx1-ubyte", vec![server.url("x.gz")], wrong, Packing::Gzip);
    let dir = scratch("checksum");
    let err = fetch(&source, &dir, &mut NoProgress).unwrap_err();
    match &err {
        DatasetError::ChecksumMismatch { url, path, expected, actual } => {
            assert_eq!(url, &server.url("x.gz"));
            assert_eq!(path, &dir.join("x-idx1-ubyte"));
            assert_eq!(expected, wrong);
            assert_eq!(actual, &md5_hex(&body));
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    assert!(err.to_string().contains(wrong) && err.to_string().contains(&md5_hex(&body)), "{err}");
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
}

#[test]
fn truncated_body_is_typed_and_leaves_nothing() {
    let body = gzip(&noise(50_000));
    let total = body.len();
    assert!(total > 40_000);
    let served = body.clone();
    let server = Server::start(move |_, _| Reply::CutOff { body: served.clone(), send: 100 });
    let source = one_file(DatasetKind::Mnist, "x-idx1-ubyte", vec![server.url("x.gz")], &md5_hex(&body), Packing::Gzip);
    let dir = scratch("truncated");
    match fetch(&source, &dir, &mut NoProgress) {
        Err(DatasetError::DownloadTruncated { url, received, expected, .. }) => {
            assert_eq!(url, server.url("x.gz"));
            assert!(received <= 100, "{received}");
            assert_eq!(expected, Some(total as u64));
        }
        other => panic!("expected a truncated download, got {other:?}"),
    }
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
}

#[test]
fn http_errors_are_typed_and_leave_nothing() {
    for status in [404u16, 500, 503] {
        let server = Server::start(move |_, _| Reply::Status(status));
        let source = one_file(
            DatasetKind::Ssc,
            "ssc_test.h5",
            vec![server.url("ssc_test.h5.zip")],
            &"a".repeat(32),
            Packing::Zip { member: "ssc_test.h5".into() },
        );
        let dir = scratch(&format!("http-{status}"));
        let err = fetch(&source, &dir, &mut NoProgress).unwrap_err();
        match &err {
            DatasetError::HttpStatus { url, path, status: s } => {
                assert_eq!(
                    (url.as_str(), path.as_path(), *s),
                    (server.url("ssc_test.h5.zip").as_str(), dir.join("ssc_test.h5").as_path(), status)
                );
            }
            other => panic!("expected HTTP {status}, got {other:?}"),
        }
        assert!(err.to_string().contains(&format!("HTTP {status}")), "{err}");
        assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
    }
}

#[test]
fn no_server_is_a_download_error_naming_url_and_target() {
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/x.gz");
    let source = one_file(DatasetKind::Mnist, "x-idx1-ubyte", vec![url.clone()], &"b".repeat(32), Packing::Gzip);
    let dir = scratch("refused");
    let err = fetch(&source, &dir, &mut NoProgress).unwrap_err();
    assert!(matches!(err, DatasetError::Download { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&url) && msg.contains(&dir.join("x-idx1-ubyte").display().to_string()), "{msg}");
    assert!(!dir.exists(), "the empty folder is removed");
}

#[test]
fn interrupted_download_restarts_cleanly() {
    let content = noise(200_000);
    let body = gzip(&content);
    let served = body.clone();
    // The first request is cut off mid-body, the next ones are served fully.
    let server = Server::start(move |_, n| {
        if n == 0 {
            Reply::CutOff { body: served.clone(), send: served.len() / 2 }
        } else {
            Reply::Body(served.clone())
        }
    });
    let source = one_file(DatasetKind::Mnist, "x-idx3-ubyte", vec![server.url("x.gz")], &md5_hex(&body), Packing::Gzip);
    let dir = scratch("restart");
    assert!(matches!(fetch(&source, &dir, &mut NoProgress), Err(DatasetError::DownloadTruncated { .. })));
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
    // A killed process leaves its temporary files behind; the next attempt overwrites them.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("x-idx3-ubyte.gz.part"), b"stale half download").unwrap();
    std::fs::write(dir.join("x-idx3-ubyte.part"), b"stale half unpack").unwrap();
    assert_eq!(fetch(&source, &dir, &mut NoProgress).unwrap(), 1);
    assert_eq!(listing(&dir), ["x-idx3-ubyte"]);
    assert_eq!(std::fs::read(dir.join("x-idx3-ubyte")).unwrap(), content);
    assert_eq!(server.requests(), ["x.gz", "x.gz"]);
}

#[test]
fn mirrors_are_tried_in_order() {
    let body = gzip(b"mirror content");
    let served = body.clone();
    let server = Server::start(
        move |path, _| {
            if path == "second/x.gz" { Reply::Body(served.clone()) } else { Reply::Status(500) }
        },
    );
    let urls = vec![server.url("first/x.gz"), server.url("second/x.gz"), server.url("third/x.gz")];
    let source = one_file(DatasetKind::Mnist, "x-idx1-ubyte", urls, &md5_hex(&body), Packing::Gzip);
    let dir = scratch("mirrors");
    assert_eq!(fetch(&source, &dir, &mut NoProgress).unwrap(), 1);
    assert_eq!(std::fs::read(dir.join("x-idx1-ubyte")).unwrap(), b"mirror content");
    assert_eq!(server.requests(), ["first/x.gz", "second/x.gz"]);
}

#[test]
fn a_body_that_is_not_gzip_is_an_error_and_leaves_nothing() {
    let body = b"this is not gzip".to_vec();
    let served = body.clone();
    let server = Server::start(move |_, _| Reply::Body(served.clone()));
    let source = one_file(DatasetKind::Mnist, "x-idx1-ubyte", vec![server.url("x.gz")], &md5_hex(&body), Packing::Gzip);
    let dir = scratch("not-gzip");
    let err = fetch(&source, &dir, &mut NoProgress).unwrap_err();
    assert!(matches!(err, DatasetError::Io { .. }), "{err:?}");
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
}

#[test]
fn a_zip_without_the_member_is_an_error_and_leaves_nothing() {
    let archive = zip_with("other.h5", b"x");
    let served = archive.clone();
    let server = Server::start(move |_, _| Reply::Body(served.clone()));
    let source = one_file(
        DatasetKind::Shd,
        "shd_test.h5",
        vec![server.url("a.zip")],
        &md5_hex(&archive),
        Packing::Zip { member: "shd_test.h5".into() },
    );
    let dir = scratch("zip-member");
    let err = fetch(&source, &dir, &mut NoProgress).unwrap_err();
    assert!(matches!(&err, DatasetError::ArchiveMember { member, .. } if member == "shd_test.h5"), "{err:?}");
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
}

#[test]
fn cache_hit_needs_no_server() {
    let body = gzip(b"cached");
    let served = body.clone();
    let server = Server::start(move |_, _| Reply::Body(served.clone()));
    let source = one_file(DatasetKind::Mnist, "x-idx1-ubyte", vec![server.url("x.gz")], &md5_hex(&body), Packing::Gzip);
    let root = scratch("cache-hit");
    let places = Places { env: Some(root.clone()), ..Places::default() };
    let dir = locate_or_fetch(&places, &source, &mut NoProgress).unwrap();
    assert_eq!(dir, root.join("mnist"));
    server.stop();
    // The server is gone: any request would fail with a connection error.
    assert_eq!(fetch(&source, &dir, &mut NoProgress).unwrap(), 0);
    assert_eq!(locate_or_fetch(&places, &source, &mut NoProgress).unwrap(), dir);
    assert_eq!(std::fs::read(dir.join("x-idx1-ubyte")).unwrap(), b"cached");
}

// ---------------------------------------------------------------------------------------
// Lookup order.

fn complete(dir: &Path, source: &Source) {
    std::fs::create_dir_all(dir).unwrap();
    for f in &source.files {
        std::fs::write(dir.join(&f.name), b"x").unwrap();
    }
}

#[test]
fn lookup_order_is_explicit_env_cache_beside_repository() {
    let source = Source::official(DatasetKind::Shd);
    let base = scratch("lookup");
    let (env, cache, beside) = (base.join("env"), base.join("cache"), base.join("shared-data"));
    let mut places = Places {
        explicit: None,
        env: Some(env.clone()),
        cache: Some(cache.clone()),
        beside_repository: Some(beside.clone()),
    };
    assert_eq!(locate(&places, &source), None);
    complete(&beside.join("shd"), &source);
    assert_eq!(locate(&places, &source), Some((Place::BesideRepository, beside.join("shd"))));
    complete(&cache.join("shd"), &source);
    assert_eq!(locate(&places, &source), Some((Place::Cache, cache.join("shd"))));
    // An incomplete folder is passed over.
    std::fs::create_dir_all(env.join("shd")).unwrap();
    std::fs::write(env.join("shd/shd_train.h5"), b"x").unwrap();
    assert_eq!(locate(&places, &source), Some((Place::Cache, cache.join("shd"))));
    // An SHD file counts only unpacked (its loader reads no gzip)...
    std::fs::write(env.join("shd/shd_test.h5.gz"), b"x").unwrap();
    assert_eq!(locate(&places, &source), Some((Place::Cache, cache.join("shd"))));
    std::fs::write(env.join("shd/shd_test.h5"), b"x").unwrap();
    assert_eq!(locate(&places, &source), Some((Place::EnvVar, env.join("shd"))));
    // ... an MNIST file also as `<name>.gz` (as in the development copy).
    let mnist = Source::official(DatasetKind::Mnist);
    std::fs::create_dir_all(env.join("mnist")).unwrap();
    for f in &mnist.files {
        std::fs::write(env.join("mnist").join(format!("{}.gz", f.name)), b"x").unwrap();
    }
    assert_eq!(locate(&places, &mnist), Some((Place::EnvVar, env.join("mnist"))));
    // An explicit path wins and is used as it is, even when it does not exist.
    places.explicit = Some(base.join("nowhere"));
    assert_eq!(locate(&places, &source), Some((Place::Explicit, base.join("nowhere"))));
    // Another data set is looked for in its own folders.
    places.explicit = None;
    assert_eq!(locate(&places, &Source::official(DatasetKind::Ssc)), None);
}

#[test]
fn downloads_go_to_the_env_folder_else_the_cache() {
    let a = Places { env: Some("/e".into()), cache: Some("/c".into()), ..Places::default() };
    assert_eq!(a.download_root(), Some(Path::new("/e")));
    let b = Places { cache: Some("/c".into()), ..Places::default() };
    assert_eq!(b.download_root(), Some(Path::new("/c")));
    let none = Places::default();
    let source = Source::official(DatasetKind::Mnist);
    assert!(matches!(locate_or_fetch(&none, &source, &mut NoProgress), Err(DatasetError::NoCacheFolder { .. })));
}
