# An independent implementation of the comparison profile's generator rules
# (docs/benchmarks.md), written apart from generator.go to cross-check it.
# python3 comparison.py | cmp - <(the events TestComparisonGolden formats)
# prints 1000 events from 2 generators at seed 42: all 500 of generator 0,
# the first 120 of generator 1, one per line, as fmtEvent formats them.
import math
M=(1<<64)-1
G=0x9e3779b97f4a7c15
def mix(z):
    z=((z^(z>>30))*0xbf58476d1ce4e5b9)&M
    z=((z^(z>>27))*0x94d049bb133111eb)&M
    return z^(z>>31)
class R:
    def __init__(s,seed,eid): s.s=mix((mix(seed)+ (eid*G))&M)
    def next(s):
        s.s=(s.s+G)&M; return mix(s.s)
    def below(s,n): return s.next()%n
    def unit(s): return (s.next()>>11)*2.0**-53
FIRST="Peter Paul Luke John Saul Vicky Kate Julie Sarah Deiter Walter".split()
LAST="Shultz Abrams Spencer White Bartels Walton Smith Jones Noris".split()
CITIES=["Phoenix","Los Angeles","San Francisco","Boise","Portland","Bend","Redmond","Seattle","Kent","Cheyenne"]
STATES="AZ CA ID OR WA WY".split()
def string(r,mx):
    n=3+r.below(mx-3); o=""
    for _ in range(n):
        d=r.next(); o+=' ' if d%13==0 else chr(97+(d>>32)%26)
    return o
def exact(r,n):
    o=""
    while n>0:
        v=r.next()>>4
        for _ in range(min(n,12)):
            o+=chr(97+v%26); v//=26
        n-=min(n,12)
    return o
def extra(r,cur,avg):
    if cur>avg: return ""
    d=avg-cur; dl=d//5
    return exact(r,d-dl+(0 if dl==0 else r.below(2*dl)))
def lp(e): return e//50
def la(e):
    rem=e%50
    if rem==0: return (e//50-1)*3+2
    if rem>=4: return (e//50)*3+2
    return (e//50)*3+rem-1
def active(r,e):
    k=lp(e)+1; a=min(k,1000); return k-a+r.below(a+10)
def price(r): return int(math.floor(10**(6*r.unit())*100+0.5))
seed=42; N=1000; Gn=2; rate=10_000_000; base=1767225600000
def ts(n): return base + n*Gn*1000//rate
def rev32(c):
    b=int('{:032b}'.format(c)[::-1],2)
    if b>=1<<31: b-=1<<32
    if b!=-(1<<31): b=abs(b)
    return b
def chan(c):
    r=R(seed,-1-c)
    u="https://www.nexmark.com/"+exact(r,5)+"/"+exact(r,5)+"/"+exact(r,5)+"/item.htm?query=1"
    if r.below(10)>0: u+="&channel_id="+str(rev32(c))
    return u
HOT=["Google","Facebook","Baidu","Apple"]
per=N//Gn
for g in range(Gn):
  for n in range(per if g==0 else 120):
    e=1+g*per+n; t=ts(n); r=R(seed,e); rem=e%50
    if rem==0:
        name=FIRST[r.below(11)]; name+=" "+LAST[r.below(9)]
        email=string(r,7)+"@"+string(r,5)+".com"
        card=" ".join("%04d"%r.below(10000) for _ in range(4))
        city=CITIES[r.below(10)]; st=STATES[r.below(6)]
        ex=extra(r,8+len(name)+len(email)+len(card)+len(city)+len(st),200)
        print("P{ID:%d Name:%s EmailAddress:%s CreditCard:%s City:%s State:%s DateTime:%d Extra:%s}"%(e//50+1000,name,email,card,city,st,t,ex))
    elif rem<4:
        item=string(r,20); desc=string(r,100); ib=price(r); res=ib+price(r)
        sel=(lp(e)//100*100 if r.below(4)>0 else active(r,e))+1000
        cat=10+r.below(5); hz=ts(n+1666)-t; exp=t+1+r.below(max(2*hz,1))
        ex=extra(r,8+len(item)+len(desc)+40,500)
        print("A{ID:%d ItemName:%s Description:%s InitialBid:%d Reserve:%d DateTime:%d Expires:%d Seller:%d Category:%d Extra:%s}"%(la(e)+1000,item,desc,ib,res,t,exp,sel,cat,ex))
    else:
        last=la(e)
        if r.below(2)>0: au=last//100*100
        else:
            mn=max(last-100,0); au=mn+r.below(last-mn+11)
        bd=(lp(e)//100*100+1 if r.below(4)>0 else active(r,e))+1000
        p=price(r)
        if r.below(2)>0:
            i=r.below(4); ch=HOT[i]; url="https://www.nexmark.com/%s/item.htm?query=1"%HOT[i].lower()
        else:
            c=r.below(10000); ch="channel-%d"%c; url=chan(c)
        ex=extra(r,32,100)
        print("B{Auction:%d Bidder:%d Price:%d Channel:%s URL:%s DateTime:%d Extra:%s}"%(au+1000,bd,p,ch,url,t,ex))
