//! Each violation shown to fire on a made-up observation, and a clean round to pass.
use super::*;
use serde_json::json;

fn claim(player: &str, chest: i64, id: &str) -> Value {
    json!({"claim_id": id, "zone": "z", "chest_id": chest, "player": player, "loot": []})
}

fn opened(body: Value) -> Answer {
    Answer::Claim {
        status: 201,
        replayed: false,
        body,
    }
}

fn replayed(body: Value) -> Answer {
    Answer::Claim {
        status: 200,
        replayed: true,
        body,
    }
}

fn exhausted() -> Answer {
    Answer::Refused {
        status: 409,
        code: "zone_exhausted".into(),
    }
}

/// Two chests, three players (one racing, one dropped-then-retried), all consistent.
fn clean() -> Observation {
    let a = claim("a", 1, "id-a");
    let b = claim("b", 2, "id-b");
    let players = vec![
        PlayerRun {
            player: "a".into(),
            plan: Plan::Racing,
            answers: vec![opened(a.clone()), replayed(a.clone())],
            late_replay: Some(replayed(a.clone())),
        },
        PlayerRun {
            player: "b".into(),
            plan: Plan::Dropped,
            answers: vec![replayed(b.clone())],
            late_replay: Some(replayed(b.clone())),
        },
        PlayerRun {
            player: "c".into(),
            plan: Plan::Single,
            answers: vec![exhausted()],
            late_replay: None,
        },
    ];
    let ledger = Ledger {
        shard: 0,
        total: 2,
        opened: 2,
        remaining: 0,
        opened_by: [(1, "a".to_owned()), (2, "b".to_owned())].into(),
        histories: [("a".to_owned(), vec![a]), ("b".to_owned(), vec![b])].into(),
    };
    Observation {
        shard: 0,
        zone: "z".into(),
        chests: 2,
        players,
        ledger,
        events: Some(vec![(1, "id-a".into()), (2, "id-b".into())]),
    }
}

fn kinds(o: &Observation) -> BTreeSet<Kind> {
    check(o).into_iter().map(|v| v.kind).collect()
}

#[test]
fn a_consistent_round_is_clean() {
    assert_eq!(check(&clean()), vec![]);
}

#[test]
fn a_chest_won_twice_is_a_duplicate() {
    let mut o = clean();
    let c2 = claim("c", 1, "id-c");
    o.players[2].answers = vec![opened(c2.clone())];
    o.ledger.histories.insert("c".into(), vec![c2]);
    let k = kinds(&o);
    assert!(k.contains(&Kind::DuplicateChest), "{k:?}");
    // The ledger says chest 1 is a's, so c's acknowledged claim is not in it.
    assert!(k.contains(&Kind::LostClaim), "{k:?}");
}

#[test]
fn an_acknowledged_claim_missing_from_the_ledger_is_lost() {
    let mut o = clean();
    o.ledger.opened_by.remove(&2);
    o.ledger.histories.remove("b");
    let k = kinds(&o);
    assert!(k.contains(&Kind::LostClaim), "{k:?}");
    assert!(k.contains(&Kind::WinnerCount), "{k:?}");
}

#[test]
fn a_ledger_row_nobody_was_told_about_is_a_phantom() {
    let mut o = clean();
    o.ledger.opened_by.insert(3, "c".into());
    assert!(kinds(&o).contains(&Kind::PhantomClaim));
}

#[test]
fn retries_must_replay_the_first_answer() {
    let mut o = clean();
    let mut other = claim("a", 1, "id-a");
    other["loot"] = json!([{"item": "gold", "qty": 1, "rarity": "common"}]);
    o.players[0].late_replay = Some(replayed(other));
    assert_eq!(kinds(&o), [Kind::ReplayMismatch].into());

    let mut o = clean();
    o.players[0].answers[1] = exhausted();
    assert!(kinds(&o).contains(&Kind::ReplayMismatch));

    // Racing twins both told "replayed": nobody in this round opened that chest.
    let mut o = clean();
    let a = claim("a", 1, "id-a");
    o.players[0].answers = vec![replayed(a.clone()), replayed(a)];
    assert_eq!(kinds(&o), [Kind::ReplayMismatch].into());
}

#[test]
fn one_key_opening_two_chests_is_flagged() {
    let mut o = clean();
    o.players[0].answers[1] = opened(claim("a", 3, "id-a2"));
    assert!(kinds(&o).contains(&Kind::KeyOpenedTwice));
}

#[test]
fn losers_must_get_zone_exhausted_and_requests_must_be_answered() {
    let mut o = clean();
    o.players[2].answers = vec![Answer::Refused {
        status: 500,
        code: "internal_error".into(),
    }];
    assert_eq!(kinds(&o), [Kind::UnexpectedStatus].into());
    o.players[2].answers = vec![Answer::Failed("connection reset".into())];
    assert_eq!(kinds(&o), [Kind::RequestFailed].into());
    // A first request with a fresh key cannot be a replay.
    o.players[2].answers = vec![replayed(claim("c", 9, "id-c"))];
    assert!(kinds(&o).contains(&Kind::UnexpectedStatus));
}

#[test]
fn too_few_winners_and_wrong_totals_are_flagged() {
    let mut o = clean();
    o.chests = 3;
    let k = kinds(&o);
    assert!(
        k.contains(&Kind::WinnerCount) && k.contains(&Kind::ZoneTotals),
        "{k:?}"
    );
}

#[test]
fn events_must_be_exactly_one_per_winning_claim() {
    let mut o = clean();
    o.events = Some(vec![(1, "id-a".into())]);
    assert_eq!(kinds(&o), [Kind::EventMismatch].into());
    o.events = Some(vec![
        (1, "id-a".into()),
        (2, "id-b".into()),
        (2, "id-b".into()),
    ]);
    assert_eq!(kinds(&o), [Kind::EventMismatch].into());
    o.events = None;
    assert_eq!(kinds(&o), [].into());
}

#[test]
fn a_zone_on_the_wrong_shard_is_flagged() {
    let mut o = clean();
    o.ledger.shard = 1;
    assert_eq!(kinds(&o), [Kind::WrongShard].into());
}
