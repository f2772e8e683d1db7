//! The cold path: Director's base images made from nothing (their own contexts, debootstrap,
//! the host's busybox) under throw-away names, and a site run on each, so that a missing or
//! misnamed file can never hide behind an image the engine already had.

mod common;

use std::time::Duration;

use common::{HTTPD, env, wait_for};
use orchestrator::{
    SiteSpec,
    base_images::{BaseImage, BaseImages, Progress, RECIPE_LABEL},
};

/// A site on `image` whose run.sh answers `hello from <name>` on its port.
fn site_on(env: &common::Env, id: u32, name: &str, image: String, run_sh: &str) -> SiteSpec {
    SiteSpec {
        image,
        ..env.site(id, name, Some(run_sh))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_base_images_are_made_from_nothing_and_each_runs_a_site() {
    let repository = format!("director-cold-{:08x}", rand::random::<u32>());
    // Whatever happens, the throw-away images go with the test, after the namespace's services
    // that use them (`env` is dropped first).
    let _cleanup = Cleanup(repository.clone());
    let env = env().await;
    let images = BaseImages::new(&repository).unwrap();
    let mut lines = Vec::new();
    let made = images
        .ensure(&env.orch, BaseImage::Python, &mut |line| lines.push(line.0))
        .await;
    assert!(made.unwrap(), "{lines:?}");
    for image in [BaseImage::Debian, BaseImage::Python] {
        assert!(env.orch.image_exists(&images.reference(image)).await.unwrap());
        assert!(
            lines
                .iter()
                .any(|l| l == &format!("making {}", images.reference(image))),
            "{lines:?}"
        );
    }
    assert_eq!(images.progress(BaseImage::Python), Some(Progress::Made));
    // Made once: asked again, nothing is made.
    assert!(
        !images
            .ensure(&env.orch, BaseImage::Python, &mut |_| {})
            .await
            .unwrap()
    );
    // A site on a base image the engine lacks waits for it to be made (busybox, here).
    let orch = env.orch.clone().with_base_images(images.clone());
    assert!(
        !orch
            .image_exists(&images.reference(BaseImage::Busybox))
            .await
            .unwrap()
    );

    let python = "#!/bin/sh\ncd /site/public && exec python3 -m http.server \"$PORT\"\n";
    // Debian's minbase has no HTTP server: its site brings the host's busybox.
    let debian = "#!/bin/sh\nexec /site/busybox httpd -f -p \"$PORT\" -h /site/public\n";
    let sites = [
        site_on(
            &env,
            11,
            "cold-busybox",
            images.reference(BaseImage::Busybox),
            HTTPD,
        ),
        site_on(
            &env,
            12,
            "cold-debian",
            images.reference(BaseImage::Debian),
            debian,
        ),
        site_on(
            &env,
            13,
            "cold-python",
            images.reference(BaseImage::Python),
            python,
        ),
    ];
    std::fs::copy("/bin/busybox", sites[1].directory.join("busybox")).unwrap();
    let probe = env.site(14, "cold-probe", None);
    for site in &sites {
        orch.ensure_service(site).await.unwrap();
    }
    assert!(
        orch.image_exists(&images.reference(BaseImage::Busybox))
            .await
            .unwrap()
    );
    for site in &sites {
        let body = wait_for(Duration::from_secs(60), || async {
            let (out, code) = env
                .run(&probe, &format!("timeout 2 wget -qO- http://{}:8080/", site.name))
                .await;
            (code == 0).then_some(out)
        })
        .await;
        assert_eq!(body, format!("hello from {}\n", site.name));
    }

    // A Python site has its database's drivers without building anything.
    let (out, code) = env
        .run(
            &sites[2],
            "python3 -c 'import psycopg2, pymysql; print(\"drivers\")'",
        )
        .await;
    assert_eq!((out.as_str(), code), ("drivers\n", 0));
    // The database servers and the database shell's clients, made on first need.
    for (id, image, command, says) in [
        (15, BaseImage::Postgres, "postgres --version", "(PostgreSQL) 15."),
        (16, BaseImage::Mariadb, "mariadbd --version", "MariaDB"),
        (
            17,
            BaseImage::DbClient,
            "psql --version && mariadb --version",
            "MariaDB",
        ),
    ] {
        assert!(
            images.ensure(&env.orch, image, &mut |_| {}).await.unwrap(),
            "{image:?}"
        );
        let probe = site_on(&env, id, &format!("cold-db{id}"), images.reference(image), HTTPD);
        let (out, code) = env.run(&probe, command).await;
        assert!(code == 0 && out.contains(says), "{image:?}: {code} {out}");
    }

    // An image an older Director made (another recipe, or none: Debian's root tagged in its
    // place) is made again; one made by this recipe is left alone.
    let client = images.reference(BaseImage::DbClient);
    let tagged = std::process::Command::new("docker")
        .args(["tag", &images.reference(BaseImage::Debian), &client])
        .status()
        .unwrap();
    assert!(tagged.success());
    assert_eq!(env.orch.image_label(&client, RECIPE_LABEL).await.unwrap(), None);
    assert!(
        images
            .ensure(&env.orch, BaseImage::DbClient, &mut |_| {})
            .await
            .unwrap()
    );
    assert_eq!(
        env.orch.image_label(&client, RECIPE_LABEL).await.unwrap(),
        Some(BaseImage::DbClient.recipe())
    );
    assert!(
        !images
            .ensure(&env.orch, BaseImage::DbClient, &mut |_| {})
            .await
            .unwrap()
    );
}

/// Removes the throw-away images when the test ends, however it ends.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for image in BaseImage::ALL.into_iter().rev() {
            let _ = std::process::Command::new("docker")
                .args(["image", "rm", "--force", &format!("{}/{}", self.0, image.name())])
                .output();
        }
    }
}
