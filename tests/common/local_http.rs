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
