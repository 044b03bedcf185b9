package fault

import (
	"errors"
	"testing"
)

func hit(i *Injector, p Point, uid string, sub int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = r.(*Injected)
		}
	}()
	i.Hit(p, uid, sub)
	return nil
}

func TestArmedTargetFiresOnceAfterSkip(t *testing.T) {
	t.Parallel()
	i := New(1)
	i.Arm(Target{Point: OnRecord, UID: "count", Subtask: 1, Skip: 2})
	if hit(i, OnBarrier, "count", 1) != nil || hit(i, OnRecord, "map", 1) != nil || hit(i, OnRecord, "count", 0) != nil {
		t.Fatal("fired at a non-matching point")
	}
	for n := 0; n < 2; n++ {
		if hit(i, OnRecord, "count", 1) != nil {
			t.Fatalf("fired during skip %d", n)
		}
	}
	var inj *Injected
	if err := hit(i, OnRecord, "count", 1); !errors.As(err, &inj) || inj.UID != "count" {
		t.Fatalf("want injected failure, got %v", err)
	}
	if hit(i, OnRecord, "count", 1) != nil {
		t.Fatal("fired twice")
	}
	if i.Fired() != 1 {
		t.Fatalf("Fired = %d", i.Fired())
	}
}

func TestNilInjectorNeverFails(t *testing.T) {
	t.Parallel()
	var i *Injector
	i.Hit(OnRecord, "x", 0)
	if i.Armed() || i.Fired() != 0 {
		t.Fatal("nil injector armed")
	}
}

func TestArmRandomIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b := New(42), New(42)
	for n := 0; n < 10; n++ {
		if x, y := a.ArmRandom([]string{"a", "b", "c"}, 100), b.ArmRandom([]string{"a", "b", "c"}, 100); x != y {
			t.Fatalf("same seed, different targets: %+v vs %+v", x, y)
		}
	}
}

func TestScheduleArmsNextAfterFiring(t *testing.T) {
	t.Parallel()
	i := New(7)
	i.Schedule([]Target{{Point: OnRecord, UID: "a", Subtask: -1}, {Point: OnBarrier, UID: "b", Subtask: -1, Skip: 1}})
	if hit(i, OnBarrier, "b", 0) != nil {
		t.Fatal("second target armed too early")
	}
	if hit(i, OnRecord, "a", 0) == nil {
		t.Fatal("first target did not fire")
	}
	if i.Pending() != 1 {
		t.Fatalf("Pending = %d, want 1", i.Pending())
	}
	if hit(i, OnBarrier, "b", 0) != nil {
		t.Fatal("skip ignored")
	}
	if hit(i, OnBarrier, "b", 0) == nil {
		t.Fatal("second target did not fire")
	}
	if i.Pending() != 0 || i.Fired() != 2 {
		t.Fatalf("Pending %d Fired %d", i.Pending(), i.Fired())
	}
}
