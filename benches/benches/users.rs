//! `users_find_by_id`: one user by id from SecantusDB (spawned through the test kit), through
//! the bare driver (`find_one` by `_id`, deserialized into the same `User`) and through
//! `MongoUserRepository::find_by_id` (id validation, operation timeout, per-document decode).
// A bench that cannot set up its server has nothing to measure: failing loudly is right.
#![allow(clippy::expect_used)]

use authcache_tests::mongo_server::MongoServer;
use authcache_users::{MongoUserRepository, User, UserRepository};
use criterion::{Criterion, criterion_group, criterion_main};
use mongodb::bson::doc;

const ID: &str = "u-bench";

fn user() -> User {
    User::new(ID, "bench@example.com", "Bench Mark")
        .with_roles(["admin", "support", "billing"])
        .with_updated_at(1_700_000_000_000)
}

fn find_by_id(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let server = runtime.block_on(MongoServer::start());
    let database = server.fresh_database();
    let repository = runtime
        .block_on(MongoUserRepository::<User>::connect(
            &server.uri(),
            &database,
        ))
        .expect("connect the repository");
    runtime
        .block_on(repository.upsert(&user()))
        .expect("seed the user");
    let client = runtime.block_on(server.client());
    let raw = client.database(&database).collection::<User>("users");

    let mut group = c.benchmark_group("users_find_by_id");
    group.bench_function("raw", |b| {
        b.to_async(&runtime).iter(|| async {
            raw.find_one(doc! { "_id": ID })
                .await
                .expect("raw find_one")
                .expect("the seeded user")
        });
    });
    group.bench_function("authcache", |b| {
        b.to_async(&runtime).iter(|| async {
            repository
                .find_by_id(ID)
                .await
                .expect("find_by_id")
                .expect("the seeded user")
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = authcache_benches::criterion();
    targets = find_by_id
}
criterion_main!(benches);
