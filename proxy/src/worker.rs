//! The data plane's threads. Like nginx's worker processes, each worker is one OS thread running a
//! single-threaded tokio runtime with its own pool of upstream connections. The listeners hand each
//! accepted client connection to one worker, round robin, and it stays there: a request and its
//! upstream exchange never cross threads, and no worker steals or wakes another. (On a
//! work-stealing runtime shared with wrk and the backends, parking and unparking threads cost more
//! than the proxying itself.)

use crate::body::UpBody;
use crate::Config;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::watch;

/// hyper's upstream client, for streamed request bodies and upgrades: pooled keep-alive
/// connections per target, one pool per worker. (Other requests use `upstream`, whose idle
/// connections are per worker thread too.)
pub(crate) type UpstreamClient = Client<HttpConnector, UpBody>;

/// One worker thread: where its connections run, and its upstream pool.
pub(crate) struct Worker {
    pub handle: Handle,
    pub client: UpstreamClient,
}

/// The worker threads, shared by the listeners.
pub(crate) struct Workers {
    workers: Vec<Worker>,
    next: AtomicUsize,
}

/// Stops the worker threads (as does dropping it); kept apart from `Workers`, which the listeners
/// share.
pub(crate) struct WorkerThreads {
    stop: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn upstream_client(config: &Config) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_timer(TokioTimer::new())
        .build(connector)
}

impl Workers {
    pub fn start(config: &Config) -> std::io::Result<(Self, WorkerThreads)> {
        let (stop, stop_rx) = watch::channel(false);
        let mut workers = Vec::new();
        let mut threads = Vec::new();
        for i in 0..config.workers.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            workers.push(Worker {
                handle: runtime.handle().clone(),
                client: upstream_client(config),
            });
            let mut stop = stop_rx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("berth-proxy-{i}"))
                .spawn(move || {
                    crate::counters::use_shard(i);
                    runtime.block_on(async move {
                        tokio::spawn(async {
                            let mut tick = tokio::time::interval(Duration::from_secs(10));
                            loop {
                                tick.tick().await;
                                crate::upstream::sweep();
                            }
                        });
                        crate::stopped(&mut stop).await;
                    });
                })?;
            threads.push(thread);
        }
        let workers = Self {
            workers,
            next: AtomicUsize::new(0),
        };
        Ok((workers, WorkerThreads { stop, threads }))
    }

    /// The worker for the next connection.
    pub fn next(&self) -> &Worker {
        let i = self.next.fetch_add(1, Relaxed) % self.workers.len();
        &self.workers[i]
    }
}

impl WorkerThreads {
    /// Ends the workers' runtimes (dropping whatever still runs there) and joins their threads.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}
