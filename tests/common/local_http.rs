//! A test application served by axum on 127.0.0.1, stopped when its owner is dropped so
//! a failing test leaves no server task behind.

use tokio::task::JoinHandle;

/// A running local HTTP server.
pub struct LocalServer {
    pub port: u16,
    task: JoinHandle<()>,
}

impl LocalServer {
    /// Binds `127.0.0.1:port` (0: any free port) and serves `router` there.
    pub async fn start(port: u16, router: axum::Router) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        Self::serve(listener, router)
    }

    /// Serves `router` on a listener the test already holds (e.g. a [`DeadPort`] that
    /// comes up).
    pub fn serve(listener: tokio::net::TcpListener, router: axum::Router) -> Self {
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { port, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback port that refuses every connection and that nothing else can take while
/// the test holds it: bound, but not listening. (Binding a port, noting it and closing it
/// again — the old way — lets another test's server take it in between.)
pub struct DeadPort {
    socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl DeadPort {
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let port = socket.local_addr().unwrap().port();
        Self { socket, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The application comes up on this very port.
    pub fn listen(self) -> tokio::net::TcpListener {
        self.socket.listen(1024).unwrap()
    }

    /// Keeps the port dead for the rest of the test process (its socket is never closed),
    /// for a URL that must stay unreachable but whose owner is not kept.
    pub fn forever(self) -> u16 {
        let port = self.port;
        std::mem::forget(self.socket);
        port
    }
}
