package server

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/runnel-go/runnel"
)

// What the server keeps of each account and region beyond its clusters
// (kept: account settings and channels) lives in its memory, and, with
// WithStateFile, in a file too: a versioned JSON document that the server
// reads once, at New, and replaces whole and atomically (a temporary
// file, fsync, rename, fsync of the directory) after every change, before
// the request that made the change is answered. The file also holds the
// server's token key (tokens.go), so that its iterators and NextTokens
// outlive it. The clusters keep their own state (runnel.Open); the file
// holds only what the engine does not model.
//
// Lock order: stateMu, then mu (only to list the kept state, released
// before the next), then an account's settings.mu, then its channels.mu.
// The operations that change kept state release their account's locks
// before they save, so that saveState can take them to read.

// stateVersion is the version of the state file's format.
const stateVersion = 1

// stateFile is the state file.
type stateFile struct {
	Version int `json:"version"`
	// TokenKey is the server's token key (TokenKeySize bytes, in standard
	// base64); none: New makes one and saves it.
	TokenKey []byte         `json:"tokenKey,omitempty"`
	Accounts []accountState `json:"accounts"`
}

// accountState is what the server keeps of one account and region.
type accountState struct {
	Account    string             `json:"account"`
	Region     string             `json:"region"`
	Commitment *billingCommitment `json:"minimumThroughputBillingCommitment,omitempty"`
	Channels   []channelState     `json:"channels,omitempty"`
}

// channelState is one channel: its description as DescribeChannel
// returns it, and its tags.
type channelState struct {
	Description channelDescription `json:"description"`
	Tags        map[string]string  `json:"tags,omitempty"`
}

// WithStateFile keeps what the server holds of each account and region
// beyond its clusters (the account settings of UpdateAccountSettings, and
// channels with their configuration and tags) in the file at path, and
// the server's token key with them, so that both survive a restart: a
// server started again on the file (and on clusters that kept their
// streams, runnel.Open) takes the iterators and NextTokens handed out
// before.
//
// New reads the file; a missing file is an empty state. Unless
// WithTokenKey gives the key, New takes the token key from the file, and
// when the file has none (a missing file, or one written by an older
// server) makes a random one and saves it in the file before the server
// serves (the file's directory must exist); if that save fails, Err
// returns its error and the server serves nothing, as below. A file that
// cannot be read or is not a state file of a version this server reads
// makes the server unusable, never silently empty: Err returns the error,
// Serve and ServeTLS return it at once, every Kinesis request is answered
// with it (InternalFailure), and the file is never written. After each
// change the server replaces the file atomically (temporary file, fsync,
// rename, fsync of the directory, mode 0600: the key is a secret) before
// it answers the request; if that fails, the request fails with
// ErrInternalFailure, and the change, made in memory, is written with the
// next one that succeeds.
//
// One server at a time may use a state file: two would overwrite each
// other's changes. Default: none, the state lives in memory only.
func WithStateFile(path string) Option {
	return func(s *Server) { s.statePath = path }
}

// Err returns what keeps the server from serving: the error of reading
// its state file, or of saving a new token key in it (WithStateFile), or
// nil.
func (s *Server) Err() error { return s.stateErr }

// openState reads the state file, if the server has one, and, unless
// WithTokenKey set the server's token key, takes the key from the file,
// making one and saving it when the file has none. What goes wrong is the
// server's Err. Called by New.
func (s *Server) openState() {
	if s.statePath == "" {
		return
	}
	if s.stateErr = s.loadState(); s.stateErr != nil || s.tokenKey != nil {
		return // with WithTokenKey, the file keeps its own key, or none
	}
	if s.stateKey == nil {
		s.stateKey = newTokenKey()
		if s.stateErr = s.saveState("WithStateFile"); s.stateErr != nil {
			return
		}
	}
	s.tokenKey = s.stateKey
}

// newKept returns an empty kept state for t.
func newKept(t tenant) *kept {
	return &kept{channels: channels{byARN: make(map[string]*channel), prefix: "arn:aws:kinesis:" + t.region + ":" + t.account + ":channel/"}}
}

// loadState reads the state file into s.kept. Called by New.
func (s *Server) loadState() error {
	path := s.statePath
	fail := func(err error) error {
		return &runnel.Error{Op: "WithStateFile", Kind: runnel.ErrInternalFailure, Msg: fmt.Sprintf("could not read the server's state file %s", path), Err: err}
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fail(err)
	}
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return fail(err)
	}
	if head.Version != stateVersion {
		return fail(fmt.Errorf("its version is %d; this server reads version %d", head.Version, stateVersion))
	}
	var f stateFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber() // the configurations kept as given: see plainNumbers
	if err := dec.Decode(&f); err != nil {
		return fail(err)
	}
	if f.TokenKey != nil && len(f.TokenKey) != TokenKeySize {
		return fail(fmt.Errorf("its token key is %d bytes, not %d", len(f.TokenKey), TokenKeySize))
	}
	kept := make(map[tenant]*kept, len(f.Accounts))
	for i, a := range f.Accounts {
		t := tenant{account: a.Account, region: a.Region}
		if !accountPattern.MatchString(t.account) || !regionPattern.MatchString(t.region) {
			return fail(fmt.Errorf("account %d of %d: %q in %q is not an account id and a region", i+1, len(f.Accounts), t.account, t.region))
		}
		if kept[t] != nil {
			return fail(fmt.Errorf("account %s in %s is there twice", t.account, t.region))
		}
		k := newKept(t)
		k.settings.commitment = a.Commitment
		if len(a.Channels) > maxChannels {
			return fail(fmt.Errorf("account %s in %s has %d channels; the most is %d", t.account, t.region, len(a.Channels), maxChannels))
		}
		for _, cs := range a.Channels {
			d := cs.Description
			if !strings.HasPrefix(d.ChannelARN, k.channels.prefix) || k.channels.byARN[d.ChannelARN] != nil {
				return fail(fmt.Errorf("channel %q of account %s in %s: its ARN is not one of the account's, or is there twice", d.ChannelARN, t.account, t.region))
			}
			for i := range d.StreamConfigurationList {
				d.StreamConfigurationList[i].RecordConfiguration = plainNumbers(d.StreamConfigurationList[i].RecordConfiguration)
			}
			d.LoggingConfiguration = plainNumbers(d.LoggingConfiguration)
			d.S3DestinationConfiguration = plainNumbers(d.S3DestinationConfiguration)
			d.S3TablesDestinationConfiguration = plainNumbers(d.S3TablesDestinationConfiguration)
			ch := &channel{desc: d}
			if len(cs.Tags) > 0 {
				if err := ch.tags.Tag(cs.Tags); err != nil {
					return fail(fmt.Errorf("channel %q: %w", d.ChannelARN, err))
				}
			}
			k.channels.byARN[d.ChannelARN] = ch
		}
		kept[t] = k
	}
	s.kept = kept
	s.stateKey = f.TokenKey
	return nil
}

// plainNumbers replaces, in a configuration decoded with UseNumber, each
// json.Number with an int64 when it is an integer and a float64
// otherwise: what a request decoded into the configuration, so that the
// CBOR protocol encodes it as before the restart.
func plainNumbers(m map[string]any) map[string]any {
	for k, v := range m {
		m[k] = plainNumber(v)
	}
	return m
}

func plainNumber(v any) any {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		return plainNumbers(v)
	case []any:
		for i := range v {
			v[i] = plainNumber(v[i])
		}
	}
	return v
}

// saveState writes the state file, if the server has one, for the
// operation op that changed the state; call it with none of the kept
// state's locks held.
func (s *Server) saveState(op string) error {
	if s.statePath == "" {
		return nil
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	b, err := json.MarshalIndent(s.snapshotState(), "", "\t")
	if err == nil {
		err = replaceFile(s.statePath, append(b, '\n'))
	}
	if err != nil {
		return &runnel.Error{Op: op, Kind: runnel.ErrInternalFailure, Msg: fmt.Sprintf("could not save the server's state to %s", s.statePath), Err: err}
	}
	return nil
}

// snapshotState returns the kept state as the state file holds it: the
// file's token key, accounts and regions in order, each channel by name,
// and nothing for an account and region with no state.
func (s *Server) snapshotState() stateFile {
	s.mu.Lock()
	all := maps.Clone(s.kept)
	s.mu.Unlock()
	f := stateFile{Version: stateVersion, TokenKey: s.stateKey, Accounts: []accountState{}}
	for _, t := range slices.SortedFunc(maps.Keys(all), func(a, b tenant) int {
		return cmp.Or(cmp.Compare(a.account, b.account), cmp.Compare(a.region, b.region))
	}) {
		k := all[t]
		a := accountState{Account: t.account, Region: t.region}
		k.settings.mu.Lock()
		a.Commitment = k.settings.commitment // replaced, never changed in place
		k.settings.mu.Unlock()
		k.channels.mu.Lock()
		for _, ch := range k.channels.byARN {
			cs := channelState{Description: ch.desc}
			for _, tag := range ch.tags.List() {
				if cs.Tags == nil {
					cs.Tags = make(map[string]string)
				}
				cs.Tags[tag.Key] = tag.Value
			}
			a.Channels = append(a.Channels, cs)
		}
		k.channels.mu.Unlock()
		slices.SortFunc(a.Channels, func(x, y channelState) int {
			return cmp.Compare(x.Description.ChannelName, y.Description.ChannelName)
		})
		if a.Commitment != nil || len(a.Channels) > 0 {
			f.Accounts = append(f.Accounts, a)
		}
	}
	return f
}

// replaceFile replaces the file at path with data atomically: it writes
// and fsyncs a temporary file in the same directory, renames it over
// path, and fsyncs the directory, so that a crash leaves the old file or
// the new one. The file is private to its owner (mode 0600).
func replaceFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	renamed = true
	if runtime.GOOS == "windows" { // a directory cannot be opened for fsync there
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
